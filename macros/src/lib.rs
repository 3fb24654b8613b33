//! Proc macros of cachedit (thin shims over `cachedit-codegen`).
