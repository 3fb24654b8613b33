// Chroma's `StaticBlockLists` is derived by `#[derive(CachedTransformer)]` from its `BlockList`
// fields; an entry whose lists disagree with them fails the same const assertion.
use cachedit::adapters::families::chroma;

cachedit::register_families!(yaml = "
families:
  - name: Chroma
    model: chroma::ChromaTransformer2DModel
    block_lists:
      - { name: transformer_blocks, pattern: Pattern_1 }
      - { name: single_transformer_blocks, pattern: Pattern_1 }
    cfg: separate
    scheduler: flow_match_euler
    tiny: tiny
");

fn main() {}
