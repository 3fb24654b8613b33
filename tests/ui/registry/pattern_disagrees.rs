use cachedit::adapters::families::flux;

cachedit::register_families!(yaml = "
families:
  - name: Flux
    model: flux::FluxTransformer2DModel
    block_lists:
      - { name: transformer_blocks, pattern: Pattern_0 }
    cfg: none
    scheduler: flow_match_euler
    tiny: tiny
");

fn main() {}
