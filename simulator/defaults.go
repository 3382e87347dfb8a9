package simulator

// Defaults for optional fleet-file fields; engine flag defaults are in resolve (capacity.go).

// defaults fills an unset model with Llama-3.1-8B-Instruct values.
func (m *ModelConfig) defaults() {
	if m.Name == "" {
		m.Name = "meta-llama/Llama-3.1-8B-Instruct"
	}
	if m.ParametersB == 0 {
		m.ParametersB = 8.03
	}
	if m.Layers == 0 {
		m.Layers = 32
	}
	if m.KVHeads == 0 {
		m.KVHeads = 8
	}
	if m.HeadDim == 0 {
		m.HeadDim = 128
	}
	if m.DtypeBytes == 0 {
		m.DtypeBytes = 2
	}
	if m.ContextLength == 0 {
		m.ContextLength = 8192
	}
}

// defaults fills an unset GPU with H100-80GB values and typical MBU/MFU.
func (g *GPUConfig) defaults() {
	if g.MemoryGiB == 0 {
		g.MemoryGiB = 80
	}
	if g.BandwidthGBps == 0 {
		g.BandwidthGBps = 3350
	}
	if g.TFLOPS == 0 {
		g.TFLOPS = 989
	}
	if g.MBU == 0 {
		g.MBU = 0.75
	}
	if g.MFU == 0 {
		g.MFU = 0.5
	}
	if g.ReservedGiB == 0 {
		g.ReservedGiB = 4
	}
	if g.StepOverheadMs == 0 {
		g.StepOverheadMs = 2
	}
}

// defaults fills unset workload fields; the rate stays 0 (no load) unless given.
func (w *Workload) defaults() {
	if w.PromptTokens.Mean == 0 {
		w.PromptTokens.Mean = 512
	}
	if w.OutputTokens.Mean == 0 {
		w.OutputTokens.Mean = 256
	}
	if w.MaxTokens == 0 {
		w.MaxTokens = 1024
	}
	if w.Timeout == 0 {
		w.Timeout = Duration(600e9)
	}
}
