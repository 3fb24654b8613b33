//! The file-level import graph of a crate, and its cycles.
//!
//! Each `.rs` file of a crate is a node. File `a` depends on file `b` when a `use` item of `a`,
//! or a path of two or more segments in its code (`crate::x::Y`, `super::f()`, `Reason::Warmup`),
//! names an item that `b` defines. Paths are resolved as rustc resolves them, on the module tree
//! built from the `mod` declarations (`#[path]` included, inline `mod` blocks nested in their
//! file): `crate`, `self`, `super`, names in scope (child modules, items, imports, globs), and
//! imports followed to the file that defines the item, so a re-export does not make its users
//! depend on the re-exporting file. Declaring a module (`mod x;`) is not a dependency. Paths in
//! macro bodies are not parsed (they are tokens for another place, such as generated code).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit_mut::VisitMut;

/// One module: its file, its child modules, the items it defines (and where), its imports.
#[derive(Default)]
struct Module {
    file: usize,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    items: BTreeMap<String, usize>,
    /// `use` names: the alias and the path it stands for.
    aliases: BTreeMap<String, Vec<String>>,
    /// `use x::*`: the glob sources.
    globs: Vec<Vec<String>>,
    /// Paths of two or more segments used in code.
    paths: Vec<Vec<String>>,
}

/// What a path names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Res {
    Module(usize),
    /// An item defined in this file.
    Item(usize),
    /// Another crate, the prelude, a generic parameter or a local: no edge.
    External,
}

/// A crate's module tree over its files.
pub struct CrateGraph {
    files: Vec<String>,
    modules: Vec<Module>,
}

/// Reads a file's source: from disk, or from a map in tests.
pub trait Source {
    /// The text of `path`, if it exists.
    fn read(&self, path: &Path) -> Option<String>;
}

/// Files on disk.
pub struct Disk;

impl Source for Disk {
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

impl Source for BTreeMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Option<String> {
        self.get(path).cloned()
    }
}

impl CrateGraph {
    /// The module tree of the crate rooted at `root` (a `lib.rs` or `main.rs`).
    pub fn load(root: &Path, src: &dyn Source) -> Result<Self, String> {
        let mut g = Self {
            files: Vec::new(),
            modules: Vec::new(),
        };
        g.load_file(
            root,
            root.parent().unwrap_or(Path::new("")).to_path_buf(),
            None,
            String::new(),
            src,
        )?;
        Ok(g)
    }

    /// Loads `path` as the module `name` under `parent`; `dir` is where its `mod x;` files are.
    fn load_file(
        &mut self,
        path: &Path,
        dir: PathBuf,
        parent: Option<usize>,
        name: String,
        src: &dyn Source,
    ) -> Result<usize, String> {
        let text = src
            .read(path)
            .ok_or_else(|| format!("cannot read {}", path.display()))?;
        let mut ast = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = self.files.len();
        self.files.push(path.display().to_string());
        let module = self.new_module(file, parent, name);
        self.fill(module, &mut ast.items, &dir, src)?;
        Ok(module)
    }

    fn new_module(&mut self, file: usize, parent: Option<usize>, name: String) -> usize {
        let id = self.modules.len();
        self.modules.push(Module {
            file,
            parent,
            ..Module::default()
        });
        if let Some(p) = parent {
            self.modules[p].children.insert(name, id);
        }
        id
    }

    fn root(&self) -> usize {
        0
    }

    /// Records the items, imports and paths of `items` into `module`, loading its child modules.
    fn fill(
        &mut self,
        module: usize,
        items: &mut [syn::Item],
        dir: &Path,
        src: &dyn Source,
    ) -> Result<(), String> {
        let file = self.modules[module].file;
        for item in items.iter_mut() {
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    let explicit = path_attr(&m.attrs);
                    match &mut m.content {
                        Some((_, inner)) => {
                            let child = self.new_module(file, Some(module), name.clone());
                            let inner_dir = match explicit {
                                Some(p) => dir.join(p),
                                None => dir.join(&name),
                            };
                            self.fill(child, inner, &inner_dir, src)?;
                        }
                        None => {
                            let (path, child_dir) = match explicit {
                                Some(p) => {
                                    let path = dir.join(p);
                                    let child_dir = path.parent().unwrap_or(dir).to_path_buf();
                                    (path, child_dir)
                                }
                                None => {
                                    let flat = dir.join(format!("{name}.rs"));
                                    if src.read(&flat).is_some() {
                                        (flat, dir.join(&name))
                                    } else {
                                        (dir.join(&name).join("mod.rs"), dir.join(&name))
                                    }
                                }
                            };
                            self.load_file(&path, child_dir, Some(module), name, src)?;
                        }
                    }
                }
                syn::Item::Use(u) => {
                    let mut out = Vec::new();
                    flatten_use(&u.tree, Vec::new(), &mut out);
                    for (path, alias) in out {
                        match alias {
                            Some(alias) => {
                                self.modules[module].aliases.insert(alias, path);
                            }
                            None => self.modules[module].globs.push(path),
                        }
                    }
                }
                syn::Item::Macro(m) => {
                    if let Some(ident) = &m.ident {
                        let exported = m.attrs.iter().any(|a| a.path().is_ident("macro_export"));
                        let target = if exported { self.root() } else { module };
                        self.modules[target].items.insert(ident.to_string(), file);
                    }
                    // The macro's body is tokens, not code of this file.
                    continue;
                }
                other => {
                    if let Some(name) = item_name(other) {
                        self.modules[module].items.insert(name, file);
                    }
                    let mut paths = PathCollector::default();
                    paths.visit_item_mut(other);
                    self.modules[module].paths.extend(paths.paths);
                }
            }
        }
        Ok(())
    }

    /// The file-level dependencies: `(from, to)` file indices, `from != to`, each with the
    /// first path that makes it.
    pub fn edges(&self) -> BTreeMap<(usize, usize), String> {
        let mut edges = BTreeMap::new();
        for (id, m) in self.modules.iter().enumerate() {
            let paths = m.aliases.values().chain(&m.globs).chain(&m.paths);
            for path in paths {
                let target = match self.resolve(id, path, 0) {
                    Res::Module(t) => Some(self.modules[t].file),
                    Res::Item(f) => Some(f),
                    Res::External => None,
                };
                if let Some(t) = target.filter(|t| *t != m.file) {
                    edges.entry((m.file, t)).or_insert_with(|| path.join("::"));
                }
            }
        }
        edges
    }

    /// Resolves `path` as written in module `from`.
    fn resolve(&self, from: usize, path: &[String], depth: usize) -> Res {
        if depth > 32 {
            return Res::External;
        }
        let Some((first, rest)) = path.split_first() else {
            return Res::Module(from);
        };
        let (start, rest) = match first.as_str() {
            "crate" => (self.root(), rest),
            "self" => (from, rest),
            "super" => match self.modules[from].parent {
                Some(p) => return self.resolve(p, &prepend_self(rest), depth + 1),
                None => return Res::External,
            },
            _ => (from, path),
        };
        let mut module = start;
        for (i, seg) in rest.iter().enumerate() {
            if seg == "super" {
                match self.modules[module].parent {
                    Some(p) => module = p,
                    None => return Res::External,
                }
                continue;
            }
            let tail = &rest[i + 1..];
            match self.lookup(module, seg, depth) {
                Some(Res::Module(m)) => module = m,
                Some(Res::Item(f)) => return Res::Item(f),
                Some(Res::External) => return Res::External,
                // Unknown in a module of this crate: another crate's name where the path starts,
                // else something this parser does not see (a derive's output): the module itself.
                None if i == 0 && first != "crate" && first != "self" => return Res::External,
                None => return Res::Item(self.modules[module].file),
            }
            if tail.is_empty() {
                return Res::Module(module);
            }
        }
        Res::Module(module)
    }

    /// What `name` means in `module`: a child module, an item, an import or a glob import.
    fn lookup(&self, module: usize, name: &str, depth: usize) -> Option<Res> {
        if depth > 32 {
            return None;
        }
        let m = &self.modules[module];
        if let Some(&c) = m.children.get(name) {
            return Some(Res::Module(c));
        }
        if let Some(&f) = m.items.get(name) {
            return Some(Res::Item(f));
        }
        if let Some(path) = m.aliases.get(name) {
            // `use x;` naming itself (`pub use foo;` of a macro) is resolved outside the aliases.
            let own = path.len() == 1 && path[0] == name;
            return Some(if own {
                m.items.get(name).map_or(Res::External, |&f| Res::Item(f))
            } else {
                self.resolve(module, path, depth + 1)
            });
        }
        for glob in &m.globs {
            if let Res::Module(g) = self.resolve(module, glob, depth + 1)
                && g != module
                && let Some(r) = self.lookup(g, name, depth + 1)
            {
                return Some(r);
            }
        }
        None
    }
}

fn prepend_self(rest: &[String]) -> Vec<String> {
    let mut p = vec!["self".to_string()];
    p.extend_from_slice(rest);
    p
}

/// `#[path = "..."]` of a `mod` item.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("path"))
        .and_then(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
}

/// The name an item defines in its module's namespace.
fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// Flattens a `use` tree into `(path, alias)` pairs; a glob has no alias.
fn flatten_use(tree: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut prefix = prefix;
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                let alias = prefix.last().cloned();
                out.push((prefix, alias));
            } else {
                let mut path = prefix;
                path.push(name.clone());
                out.push((path, Some(name)));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix;
            let name = r.ident.to_string();
            if name != "self" {
                path.push(name);
            }
            out.push((path, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix, None)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix.clone(), out);
            }
        }
    }
}

/// Collects the paths of two or more segments (or starting with `crate`/`self`/`super`) in an
/// item, outside `use` items and macro bodies.
#[derive(Default)]
struct PathCollector {
    paths: Vec<Vec<String>>,
}

impl VisitMut for PathCollector {
    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let relative = segs
            .first()
            .is_some_and(|s| s == "crate" || s == "self" || s == "super");
        if path.leading_colon.is_none() && (segs.len() > 1 || relative) {
            self.paths.push(segs);
        }
        syn::visit_mut::visit_path_mut(self, path);
    }

    /// A `use` inside a function body: its paths, resolved from the enclosing module.
    fn visit_item_use_mut(&mut self, u: &mut syn::ItemUse) {
        let mut out = Vec::new();
        flatten_use(&u.tree, Vec::new(), &mut out);
        self.paths.extend(out.into_iter().map(|(path, _)| path));
    }

    /// `pub(crate)`, `pub(super)`: not a dependency.
    fn visit_visibility_mut(&mut self, _: &mut syn::Visibility) {}

    fn visit_item_mod_mut(&mut self, _: &mut syn::ItemMod) {}
}

/// The cycles of a graph over `n` nodes: each strongly connected component of more than one
/// node, as one cycle through it (`a -> b -> a`) and its nodes, sorted.
pub fn cycles(n: usize, edges: &BTreeMap<(usize, usize), String>) -> Vec<(Vec<usize>, BTreeSet<usize>)> {
    let mut out_edges = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        out_edges[a].push(b);
    }
    let sccs = tarjan(n, &out_edges);
    let mut found = Vec::new();
    for scc in sccs.into_iter().filter(|s| s.len() > 1) {
        let members: BTreeSet<usize> = scc.iter().copied().collect();
        let start = *members.iter().next().unwrap_or(&0);
        found.push((cycle_through(start, &members, &out_edges), members));
    }
    found.sort();
    found
}

/// A shortest cycle from `start` back to it inside `members` (breadth-first).
fn cycle_through(start: usize, members: &BTreeSet<usize>, out_edges: &[Vec<usize>]) -> Vec<usize> {
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &out_edges[v] {
            if !members.contains(&w) {
                continue;
            }
            if w == start {
                let mut cycle = vec![v];
                let mut cur = v;
                while cur != start {
                    cur = prev[&cur];
                    cycle.push(cur);
                }
                cycle.reverse();
                cycle.push(start);
                return cycle;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}

/// Tarjan's strongly connected components.
fn tarjan(n: usize, out_edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        out: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        sccs: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for i in 0..s.out[v].len() {
            let w = s.out[v][i];
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            s.sccs.push(scc);
        }
    }
    let mut s = State {
        out: out_edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.sccs
}

/// One cycle of a crate: the files of its strongly connected component (sorted) and one cycle
/// through them, `a.rs -> b.rs -> a.rs` (with the path that makes each step when explained).
pub struct Cycle {
    /// Every file of the component.
    pub files: Vec<String>,
    /// One cycle through the component.
    pub text: String,
}

/// The files of the crate rooted at `root` and its import cycles, file names relative to `base`.
pub fn crate_cycles(
    root: &Path,
    base: &Path,
    src: &dyn Source,
    explain: bool,
) -> Result<(Vec<PathBuf>, Vec<Cycle>), String> {
    let g = CrateGraph::load(root, src)?;
    let name = |f: usize| {
        let p = Path::new(&g.files[f]);
        p.strip_prefix(base).unwrap_or(p).display().to_string()
    };
    let edges = g.edges();
    let cycles = cycles(g.files.len(), &edges)
        .into_iter()
        .map(|(c, members)| {
            let mut text = name(c[0]);
            for w in c.windows(2) {
                if explain {
                    text += &format!(" -({})-> ", edges[&(w[0], w[1])]);
                } else {
                    text += " -> ";
                }
                text += &name(w[1]);
            }
            let mut files: Vec<String> = members.into_iter().map(name).collect();
            files.sort();
            Cycle { files, text }
        })
        .collect();
    Ok((g.files.iter().map(PathBuf::from).collect(), cycles))
}
