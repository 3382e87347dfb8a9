package profiles

import "embed"

// FS holds the built-in engine profiles, one recording-rule file per engine
// (vllm.yml, sglang.yml, tgi.yml, trtllm.yml, llamacpp.yml), each with exactly one group named after
// the engine. The collector loads them with model/rulefmt.
//
//go:embed *.yml
var FS embed.FS
