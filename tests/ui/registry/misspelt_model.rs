use cachedit::adapters::families::flux;

cachedit::register_families!(yaml = "
families:
  - name: Flux
    model: flux::FluxTransformer2DModl
    block_lists:
      - { name: transformer_blocks, pattern: Pattern_1 }
    cfg: none
    scheduler: flow_match_euler
    configs: { FLUX.1-dev: dev }
    tiny: tiny
");

fn main() {}
