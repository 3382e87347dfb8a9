package config

import "testing"

func TestGPUHasFP8(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fp8, known bool
	}{
		{"h100-80gb", true, true},
		{"H200", true, true},
		{"nvidia-l40s", true, true},
		{"l4", true, true},
		{"b200-192gb", true, true},
		{"a100-40gb", false, true},
		{"A10", false, true},
		{"v100-32gb", false, true},
		{"t4", false, true},
		{"a10g", false, false},
		{"mi300x", false, false},
		{"", false, false},
	} {
		fp8, known := GPUHasFP8(tc.name)
		if fp8 != tc.fp8 || known != tc.known {
			t.Errorf("GPUHasFP8(%q) = %v, %v; want %v, %v", tc.name, fp8, known, tc.fp8, tc.known)
		}
	}
}
