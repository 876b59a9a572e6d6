"""Where a folder's files come from: hashes (:mod:`~magicmask.provenance.hashing`), the record
``magicmask.json`` and the folder's owner (:mod:`~magicmask.provenance.record`), and re-verifying a folder
against its record (:mod:`~magicmask.provenance.verify`)."""
