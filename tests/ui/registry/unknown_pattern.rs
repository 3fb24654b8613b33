cachedit::register_families!(yaml = "
families:
  - name: Toy
    model: Model
    block_lists:
      - { name: blocks, pattern: Pattern_7 }
    cfg: none
    scheduler: flow_match_euler
    tiny: tiny
");

fn main() {}
