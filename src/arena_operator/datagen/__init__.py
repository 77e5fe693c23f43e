"""Data generation (ArenaJob `type: datagen`, `arena run --type datagen`): exactly `dataGen.count` items, each one
generated conversation of one of the bundle's scenarios, deduplicated by normalised content, written as one file
per shard and one merged `data.<format>`.

plan.py      the shards (work units of the same Redis queue) and the job config they carry
items.py     an item's record and its normalised content hash
seeded.py    the item's seed into every provider call (and `{{seed}}` into mock replies)
generate.py  the generation loop of one shard: retries, quality filters (the bundle's assertions), dedupe
formats.py   the merged-file writers (jsonl, json, csv) and the csv flattening
dedupe.py    in-process dedupe (a local run); the distributed one is workqueue.datagen.DataGenLedger
outputs.py   a shard's file into the sink; the merged file and summary.json from the shard files
worker.py    the worker side (`arena worker` of a datagen job)      local.py   `arena run --type datagen`
"""
