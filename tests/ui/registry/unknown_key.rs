cachedit::register_families!(yaml = "
families:
  - name: Toy
    model: Model
    block_lists:
      - { name: blocks, patern: Pattern_3 }
    cfg: none
    scheduler: flow_match_euler
    tiny: tiny
");

fn main() {}
