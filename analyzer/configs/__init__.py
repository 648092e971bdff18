"""Judge configs: the schema of a config file (:mod:`.judgeconfig`) and the catalog of named,
content-hashed versions the daemon judges with (:mod:`.catalog`).
"""
