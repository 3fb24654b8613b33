//! The one place a cache option is declared: [`declare_cache_config!`] takes each option once
//! (its doc, YAML spelling, type and default) and generates `CacheConfig` with its `Default`,
//! the patch type `CacheConfigPatch` (every option optional) with its `apply`, and the list of
//! YAML keys `CacheConfig::KEYS`, so adding an option is one entry.

/// Declares the cache options. Each entry is
///
/// ```text
/// /// Doc.
/// field: Type = default,
/// field as "YamlName": Type = default,      // a YAML spelling other than the field name
/// field: Option<Type> = None,               // an optional option (its patch field is Option<Type>)
/// ```
///
/// and every entry ends with a comma.
macro_rules! declare_cache_config {
    // Normalise one entry into `{ [attrs] field (key) [wrap] (field type) (patch inner type) (default) }`.
    (@munch [$($done:tt)*] $(#[$m:meta])* $f:ident as $key:literal : Option<$t:ty> = $d:expr, $($rest:tt)*) => {
        declare_cache_config!(@munch [$($done)* { [$(#[$m])* #[serde(rename = $key)]] $f ($key) [Some] (Option<$t>) ($t) ($d) }] $($rest)*);
    };
    (@munch [$($done:tt)*] $(#[$m:meta])* $f:ident as $key:literal : $t:ty = $d:expr, $($rest:tt)*) => {
        declare_cache_config!(@munch [$($done)* { [$(#[$m])* #[serde(rename = $key)]] $f ($key) [] ($t) ($t) ($d) }] $($rest)*);
    };
    (@munch [$($done:tt)*] $(#[$m:meta])* $f:ident : Option<$t:ty> = $d:expr, $($rest:tt)*) => {
        declare_cache_config!(@munch [$($done)* { [$(#[$m])*] $f (stringify!($f)) [Some] (Option<$t>) ($t) ($d) }] $($rest)*);
    };
    (@munch [$($done:tt)*] $(#[$m:meta])* $f:ident : $t:ty = $d:expr, $($rest:tt)*) => {
        declare_cache_config!(@munch [$($done)* { [$(#[$m])*] $f (stringify!($f)) [] ($t) ($t) ($d) }] $($rest)*);
    };
    (@wrap [] $e:expr) => { $e };
    (@wrap [Some] $e:expr) => { Some($e) };
    (@munch [$({ [$($attr:tt)*] $f:ident ($key:expr) [$($wrap:ident)?] ($full:ty) ($inner:ty) ($d:expr) })*]) => {
        /// The DBCache options of one block list, with cache-dit's field names in serde and its
        /// defaults (`DBCacheConfig()` in Python equals `CacheConfig::default()`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct CacheConfig {
            $( $($attr)* pub $f: $full, )*
        }

        impl Default for CacheConfig {
            fn default() -> Self {
                Self { $( $f: $d, )* }
            }
        }

        impl CacheConfig {
            /// Every option's YAML key (cache-dit's spelling), in declaration order.
            pub const KEYS: &'static [&'static str] = &[$($key),*];
        }

        /// A `CacheConfig` with every field optional: the fields that are set override the base
        /// config (cache-dit's `update(**kw)` with non-None values). Unknown keys are an error.
        /// Each field is the `CacheConfig` field of the same name.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct CacheConfigPatch {
            $( $($attr)* pub $f: Option<$inner>, )*
        }

        impl CacheConfigPatch {
            /// Overwrites the fields of `config` that this patch sets.
            pub fn apply(&self, config: &mut CacheConfig) {
                $(
                    if let Some(v) = &self.$f {
                        config.$f = declare_cache_config!(@wrap [$($wrap)?] v.clone());
                    }
                )*
            }
        }
    };
    ($($entries:tt)*) => {
        declare_cache_config!(@munch [] $($entries)*);
    };
}

pub(crate) use declare_cache_config;
