package simulator

import (
	"fmt"
	"math"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// validator fills defaults and collects positioned errors for one fleet file.
type validator struct {
	file string
	root *yaml.Node
	errs []error
}

// node returns the YAML node at path (mapping keys or sequence indexes), or nil.
func nodeAt(n *yaml.Node, path ...string) *yaml.Node {
	for _, p := range path {
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
					break
				}
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

// errorf records an error at the deepest existing node along path.
func (v *validator) errorf(path []string, format string, args ...any) {
	line := 0
	for i := len(path); i >= 0; i-- {
		if n := nodeAt(v.root, path[:i]...); n != nil {
			line = n.Line
			break
		}
	}
	v.errs = append(v.errs, &ConfigError{File: v.file, Line: line, Field: strings.Join(path, "."), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) fleet(c *FleetConfig) {
	if len(c.Servers) == 0 {
		v.errorf([]string{"servers"}, "at least one server is required")
	}
	names := map[string]bool{}
	listens := map[string]bool{}
	for i := range c.Servers {
		s := &c.Servers[i]
		p := []string{"servers", strconv.Itoa(i)}
		if s.Name == "" {
			s.Name = fmt.Sprintf("%s-%d", s.Engine, i)
		}
		if names[s.Name] {
			v.errorf(append(p, "name"), "duplicate server name %q", s.Name)
		}
		names[s.Name] = true
		if s.Listen != "" && listens[s.Listen] {
			v.errorf(append(p, "listen"), "duplicate listen address %q", s.Listen)
		}
		if s.Listen != "" {
			listens[s.Listen] = true
		}
		v.server(p, s)
	}
	for i, t := range c.Truth {
		p := []string{"truth", strconv.Itoa(i)}
		if !validBottleneck(t.Bottleneck) {
			v.errorf(append(p, "bottleneck"), "must be one of B1..B13, got %q", t.Bottleneck)
		}
		if !names[t.Server] {
			v.errorf(append(p, "server"), "unknown server %q", t.Server)
		}
		switch {
		case t.FromEvent != "" && !knownEvent(t.FromEvent):
			v.errorf(append(p, "from_event"), "must be one of %s, got %q", strings.Join(events(), ", "), t.FromEvent)
		case t.FromEvent != "" && t.From != 0:
			v.errorf(append(p, "from"), "set from or from_event, not both")
		case t.To <= t.From:
			v.errorf(append(p, "to"), "must be after from")
		}
		if l := t.Lever; l != nil {
			v.lever(append(p, "lever"), l, c.Servers, t.Server)
		}
		if c.Duration > 0 && t.To > c.Duration {
			v.errorf(append(p, "to"), "is after the end of the run (duration %v)", time.Duration(c.Duration))
		}
	}
}

// lever checks a truth's lever: an id, and a flag of the server's engine
// with a value, or neither.
func (v *validator) lever(p []string, l *Lever, servers []ServerConfig, server string) {
	if l.ID == "" {
		v.errorf(append(p, "id"), "is required (a catalog id)")
	}
	if (l.Flag == "") != (l.Value == "") {
		v.errorf(append(p, "flag"), "set flag and value together, or neither")
		return
	}
	if l.Flag == "" {
		return
	}
	for _, s := range servers {
		if s.Name == server && !slices.Contains(engineFlags[s.Engine], settingOfFlag(l.Flag)) {
			v.errorf(append(p, "flag"), "is not a %s flag (valid: %s)", s.Engine, strings.Join(engineFlagNames(s.Engine), ", "))
		}
	}
}

func validBottleneck(id string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "B"))
	return strings.HasPrefix(id, "B") && err == nil && n >= 1 && n <= 13
}

func (v *validator) server(p []string, s *ServerConfig) {
	if _, ok := engineFlags[s.Engine]; !ok {
		v.errorf(append(p, "engine"), "must be vllm, sglang or tgi, got %q", s.Engine)
		return
	}
	if s.Listen == "" {
		v.errorf(append(p, "listen"), "is required (host:port)")
	} else if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		v.errorf(append(p, "listen"), "must be host:port: %v", err)
	}
	switch s.MetricsVersion {
	case "":
		s.MetricsVersion = "v1"
	case "v1":
	case "v0":
		if s.Engine != EngineVLLM {
			v.errorf(append(p, "metrics_version"), "only vllm has a v0 metric set")
		}
	default:
		v.errorf(append(p, "metrics_version"), "must be v1 or v0, got %q", s.MetricsVersion)
	}
	s.Model.defaults()
	v.model(append(p, "model"), &s.Model)
	s.GPU.defaults()
	v.gpu(append(p, "gpu"), &s.GPU)
	v.settingKeys(append(p, "settings"), nodeAt(v.root, append(p, "settings")...), s.Engine)
	for _, err := range s.Settings.check(s.Engine, s.Model, s.GPU) {
		v.errorf(append(p, "settings", err.field), "%s", err.msg)
	}
	s.Workload.defaults()
	for _, err := range s.Workload.check() {
		v.errorf(append(p, "workload", err.field), "%s", err.msg)
	}
	// Events apply cumulatively, in order, exactly as the server will apply them, so a file
	// that validates cannot fail at run time.
	curW, curS := s.Workload, s.Settings
	for j, ev := range s.Events {
		ep := append(slices.Clone(p), "events", strconv.Itoa(j))
		if ev.Workload == nil && ev.Settings == nil {
			v.errorf(ep, "event needs workload or settings")
		}
		if j > 0 && ev.At < s.Events[j-1].At {
			v.errorf(append(ep, "at"), "events must be in time order")
		}
		if ev.Workload != nil {
			w := curW
			if errs := strictDecode(ev.Workload, &w); len(errs) > 0 {
				v.nodeErrors(append(ep, "workload"), errs)
			} else if errs := w.check(); len(errs) > 0 {
				for _, err := range errs {
					v.errorf(append(ep, "workload", err.field), "%s", err.msg)
				}
			} else {
				curW = w
			}
		}
		if ev.Settings != nil {
			v.settingKeys(append(ep, "settings"), ev.Settings, s.Engine)
			st := curS
			if errs := strictDecode(ev.Settings, &st); len(errs) > 0 {
				v.nodeErrors(append(ep, "settings"), errs)
			} else if errs := st.check(s.Engine, s.Model, s.GPU); len(errs) > 0 {
				for _, err := range errs {
					v.errorf(append(ep, "settings", err.field), "%s", err.msg)
				}
			} else {
				curS = st
			}
		}
	}
}

func (v *validator) nodeErrors(p []string, errs []nodeError) {
	for _, e := range errs {
		v.errs = append(v.errs, &ConfigError{File: v.file, Line: e.line, Field: strings.Join(append(slices.Clone(p), e.field), "."), Msg: e.msg})
	}
}

// settingKeys rejects flags that belong to another engine.
func (v *validator) settingKeys(p []string, n *yaml.Node, e Engine) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(engineFlags[e], k.Value) {
			v.errs = append(v.errs, &ConfigError{File: v.file, Line: k.Line, Field: strings.Join(append(slices.Clone(p), k.Value), "."),
				Msg: fmt.Sprintf("not a %s setting (valid: %s)", e, strings.Join(engineFlags[e], ", "))})
		}
	}
}

type fieldError struct{ field, msg string }

func (v *validator) model(p []string, m *ModelConfig) {
	pos := func(f string, x float64) {
		if !(x > 0) || math.IsInf(x, 0) {
			v.errorf(append(p, f), "must be positive")
		}
	}
	pos("parameters_b", m.ParametersB)
	pos("layers", float64(m.Layers))
	pos("kv_heads", float64(m.KVHeads))
	pos("head_dim", float64(m.HeadDim))
	pos("dtype_bytes", m.DtypeBytes)
	pos("context_length", float64(m.ContextLength))
}

func (v *validator) gpu(p []string, g *GPUConfig) {
	for f, x := range map[string]float64{"memory_gib": g.MemoryGiB, "bandwidth_gbps": g.BandwidthGBps, "tflops": g.TFLOPS, "reserved_gib": g.ReservedGiB, "step_overhead_ms": g.StepOverheadMs} {
		if !(x > 0) || math.IsInf(x, 0) {
			v.errorf(append(p, f), "must be positive")
		}
	}
	if !(g.FrontendMs >= 0) || math.IsInf(g.FrontendMs, 0) {
		v.errorf(append(p, "frontend_ms"), "must not be negative")
	}
	for f, x := range map[string]float64{"mbu": g.MBU, "mfu": g.MFU} {
		if !(x > 0 && x <= 1) {
			v.errorf(append(p, f), "must be in (0, 1]")
		}
	}
}

// check validates settings for engine e; it does not fill defaults (see resolve).
func (s Settings) check(e Engine, m ModelConfig, g GPUConfig) []fieldError {
	var errs []fieldError
	add := func(f, format string, args ...any) { errs = append(errs, fieldError{f, fmt.Sprintf(format, args...)}) }
	nonNeg := func(f string, x int) {
		if x < 0 {
			add(f, "must not be negative")
		}
	}
	switch e {
	case EngineVLLM:
		if s.GPUMemoryUtilization != 0 && !(s.GPUMemoryUtilization > 0 && s.GPUMemoryUtilization <= 1) {
			add("gpu_memory_utilization", "must be in (0, 1], got %v", s.GPUMemoryUtilization)
		}
		nonNeg("max_num_seqs", s.MaxNumSeqs)
		nonNeg("api_server_count", s.APIServerCount)
		nonNeg("max_num_batched_tokens", s.MaxNumBatchedTokens)
		nonNeg("max_model_len", s.MaxModelLen)
		nonNeg("long_prefill_token_threshold", s.LongPrefillTokenThreshold)
		if s.NumSpeculativeTokens < 0 || s.NumSpeculativeTokens > maxSpecTokens {
			add("num_speculative_tokens", "must be in [0, %d], got %d", maxSpecTokens, s.NumSpeculativeTokens)
		}
		if s.SpeculativeMethod != "" && !slices.Contains(specMethods, s.SpeculativeMethod) {
			add("speculative_method", "must be one of %s, got %q", strings.Join(specMethods, ", "), s.SpeculativeMethod)
		}
		if s.BlockSize != 0 && !slices.Contains([]int{1, 8, 16, 32, 64, 128}, s.BlockSize) {
			add("block_size", "must be one of 1, 8, 16, 32, 64, 128, got %d", s.BlockSize)
		}
		if s.KVCacheDtype != "" && kvDtypeBytes(s.KVCacheDtype, 2) == 0 {
			add("kv_cache_dtype", "must be auto, fp8, fp8_e4m3, fp8_e5m2, bfloat16 or float16, got %q", s.KVCacheDtype)
		}
	case EngineSGLang:
		if s.MemFractionStatic != 0 && !(s.MemFractionStatic > 0 && s.MemFractionStatic < 1) {
			add("mem_fraction_static", "must be in (0, 1), got %v", s.MemFractionStatic)
		}
		nonNeg("max_running_requests", s.MaxRunningRequests)
		nonNeg("max_prefill_tokens", s.MaxPrefillTokens)
		if s.ChunkedPrefillSize < -1 {
			add("chunked_prefill_size", "must be -1 (disabled) or positive")
		}
		if s.ScheduleConservativeness < 0 || math.IsInf(s.ScheduleConservativeness, 0) || math.IsNaN(s.ScheduleConservativeness) {
			add("schedule_conservativeness", "must be positive")
		}
		if s.KVCacheDtype != "" && kvDtypeBytes(s.KVCacheDtype, 2) == 0 {
			add("kv_cache_dtype", "must be auto, fp8_e4m3, fp8_e5m2, bfloat16 or float16, got %q", s.KVCacheDtype)
		}
	case EngineTGI:
		nonNeg("max_concurrent_requests", s.MaxConcurrentRequests)
		nonNeg("max_batch_prefill_tokens", s.MaxBatchPrefillTokens)
		nonNeg("max_batch_total_tokens", s.MaxBatchTotalTokens)
		nonNeg("max_total_tokens", s.MaxTotalTokens)
		nonNeg("max_input_tokens", s.MaxInputTokens)
		if s.MaxInputTokens > 0 && s.MaxTotalTokens > 0 && s.MaxInputTokens >= s.MaxTotalTokens {
			add("max_input_tokens", "must be below max_total_tokens")
		}
		if s.KVCacheDtype != "" && kvDtypeBytes(s.KVCacheDtype, 2) == 0 {
			add("kv_cache_dtype", "must be auto, fp8, fp8_e4m3, fp8_e4m3fn, fp8_e5m2, bfloat16 or float16, got %q", s.KVCacheDtype)
		}
	}
	if len(errs) == 0 {
		if _, err := resolve(e, s, m, g); err != nil {
			add(err.field, "%s", err.msg)
		}
	}
	return errs
}

func (w Workload) check() []fieldError {
	var errs []fieldError
	add := func(f, format string, args ...any) { errs = append(errs, fieldError{f, fmt.Sprintf(format, args...)}) }
	if !(w.Rate >= 0 && w.Rate <= maxRate) {
		add("rate", "must be a number in [0, %v]", maxRate)
	}
	for i, p := range w.Profile {
		if !(p.Rate >= 0 && p.Rate <= maxRate) {
			add("profile."+strconv.Itoa(i)+".rate", "must be a number in [0, %v]", maxRate)
		}
		if i > 0 && p.At <= w.Profile[i-1].At {
			add("profile."+strconv.Itoa(i)+".at", "must increase")
		}
	}
	for name, d := range map[string]Dist{"prompt_tokens": w.PromptTokens, "output_tokens": w.OutputTokens} {
		if !(d.Mean >= 1) || math.IsInf(d.Mean, 0) {
			add(name+".mean", "must be at least 1")
		}
		if d.CV < 0 || d.CV > 10 {
			add(name+".cv", "must be in [0, 10]")
		}
		if d.Min < 0 || d.Max < 0 || (d.Max > 0 && d.Max < d.Min) {
			add(name+".max", "min and max must be non-negative with max >= min")
		}
		if d.TailFraction < 0 || d.TailFraction > 1 {
			add(name+".tail_fraction", "must be in [0, 1]")
		}
		if d.TailFraction > 0 && !(d.TailMean >= 1) {
			add(name+".tail_mean", "must be at least 1 when tail_fraction is set")
		}
	}
	if w.MaxTokens < 1 {
		add("max_tokens", "must be at least 1")
	}
	if w.SharedPrefixFraction < 0 || w.SharedPrefixFraction > 1 {
		add("shared_prefix_fraction", "must be in [0, 1]")
	}
	if !(w.SpecAcceptance >= 0 && w.SpecAcceptance < 1) {
		add("spec_acceptance", "must be in [0, 1)")
	}
	if w.Timeout <= 0 {
		add("timeout", "must be positive")
	}
	return errs
}

// maxRate bounds arrival rates so that a typo cannot make the simulation run away.
const maxRate = 10000

type nodeError struct {
	line       int
	field, msg string
}

// strictDecode decodes n into out (a pointer to struct), rejecting keys that out does not have.
// Fields absent from n keep their values, so it applies partial updates.
func strictDecode(n *yaml.Node, out any) []nodeError {
	var errs []nodeError
	checkKeys(n, reflect.TypeOf(out).Elem(), "", &errs)
	if len(errs) > 0 {
		return errs
	}
	if err := n.Decode(out); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
		line := n.Line
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		errs = append(errs, nodeError{line: line, msg: msg})
	}
	return errs
}

func checkKeys(n *yaml.Node, t reflect.Type, prefix string, errs *[]nodeError) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != reflect.TypeOf(yaml.Node{}):
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, nodeError{line: n.Line, field: strings.TrimSuffix(prefix, "."), msg: "must be a mapping"})
			return
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if name := strings.Split(f.Tag.Get("yaml"), ",")[0]; name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				*errs = append(*errs, nodeError{line: n.Content[i].Line, field: prefix + k, msg: "unknown field"})
				continue
			}
			checkKeys(n.Content[i+1], ft, prefix+k+".", errs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), prefix+strconv.Itoa(i)+".", errs)
		}
	}
}
