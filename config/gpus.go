package config

import "strings"

// gpuFP8 says, by GPU model, whether its tensor cores compute in FP8
// (compute capability 8.9 or more). Only what the table names is known:
// any other accelerator is reported as unknown, never guessed.
var gpuFP8 = map[string]bool{
	"b200": true,
	"h100": true,
	"h200": true,
	"l40s": true,
	"l4":   true,
	"a100": false,
	"a10":  false,
	"v100": false,
	"t4":   false,
}

// GPUHasFP8 reports whether the accelerator type (a name as in
// cost.gpu_hour_prices: "h100-80gb", "a100-40gb", "nvidia-l40s") has FP8
// tensor cores; known is false when the GPU model is not in the table. The
// GPU model is the name's first dash-separated word after an optional
// "nvidia" word.
func GPUHasFP8(accelerator string) (fp8, known bool) {
	name := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(accelerator)), "nvidia-")
	family, _, _ := strings.Cut(name, "-")
	fp8, known = gpuFP8[family]
	return fp8, known
}
