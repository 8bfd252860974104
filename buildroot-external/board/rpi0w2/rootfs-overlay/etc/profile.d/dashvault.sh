# `dashvault status`, `dashvault verify` etc. use the recorder's config.
export DASHVAULT_CONFIG=/data/dashvault.json
