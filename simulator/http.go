package simulator

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Handler serves the server's engine endpoints (/metrics, /health, the engine's info
// endpoint) and the simulator's /admin endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	switch s.cfg.Engine {
	case EngineVLLM:
		mux.HandleFunc("GET /v1/models", s.serveModels)
	case EngineSGLang:
		mux.HandleFunc("GET /get_server_info", s.serveSGLangInfo)
		mux.HandleFunc("GET /get_model_info", s.serveSGLangModel)
	case EngineTGI:
		mux.HandleFunc("GET /info", s.serveTGIInfo)
	}
	mux.HandleFunc("GET /admin/state", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.State()) })
	mux.HandleFunc("POST /admin/settings", s.adminUpdate(s.UpdateSettings))
	mux.HandleFunc("POST /admin/workload", s.adminUpdate(s.UpdateWorkload))
	mux.HandleFunc("POST /admin/restart", func(w http.ResponseWriter, _ *http.Request) {
		s.Restart()
		writeJSON(w, http.StatusOK, s.State())
	})
	return mux
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	ct := "text/plain; version=0.0.4; charset=utf-8"
	if s.cfg.Engine == EngineTGI {
		ct = "text/plain; version=0.0.4"
	}
	w.Header().Set("Content-Type", ct)
	_ = s.WriteMetrics(w)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) adminUpdate(apply func([]byte) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeJSON(w, http.StatusRequestEntityTooLarge, FieldError{Msg: "body larger than 64 KiB"})
				return
			}
			writeJSON(w, http.StatusBadRequest, FieldError{Msg: "reading body: " + err.Error()})
			return
		}
		if err := apply(body); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				writeJSON(w, http.StatusBadRequest, fe)
				return
			}
			writeJSON(w, http.StatusBadRequest, FieldError{Msg: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s.State())
	}
}

func (s *Server) serveModels(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	name, maxLen, created := s.cfg.Model.Name, s.p.maxModelLen, s.start.Unix()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id": name, "object": "model", "created": created, "owned_by": "vllm",
			"root": name, "parent": nil, "max_model_len": maxLen, "permission": []any{},
		}},
	})
}

func (s *Server) serveSGLangInfo(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st, p, m := s.cfg.Settings, s.p, s.cfg.Model
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"model_path":                m.Name,
		"served_model_name":         m.Name,
		"mem_fraction_static":       st.MemFractionStatic,
		"max_running_requests":      st.MaxRunningRequests,
		"chunked_prefill_size":      st.ChunkedPrefillSize,
		"max_prefill_tokens":        st.MaxPrefillTokens,
		"schedule_conservativeness": st.ScheduleConservativeness,
		"schedule_policy":           "fcfs",
		"disable_radix_cache":       !p.prefixCache,
		"page_size":                 1,
		"kv_cache_dtype":            st.KVCacheDtype,
		"tp_size":                   tpDegree(EngineSGLang, st),
		"quantization":              sglangQuantization(st),
		"dp_size":                   1,
		"context_length":            m.ContextLength,
		"max_total_num_tokens":      p.kvTokens,
		"enable_metrics":            true,
		"version":                   "0.5.0",
	})
}

func (s *Server) serveSGLangModel(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"model_path": s.cfg.Model.Name, "tokenizer_path": s.cfg.Model.Name, "is_generation": true})
}

func (s *Server) serveTGIInfo(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st, m := s.cfg.Settings, s.cfg.Model
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"model_id":                 m.Name,
		"model_sha":                nil,
		"model_pipeline_tag":       "text-generation",
		"max_concurrent_requests":  st.MaxConcurrentRequests,
		"max_best_of":              2,
		"max_stop_sequences":       4,
		"max_input_tokens":         st.MaxInputTokens,
		"max_total_tokens":         st.MaxTotalTokens,
		"max_batch_total_tokens":   st.MaxBatchTotalTokens,
		"max_batch_prefill_tokens": st.MaxBatchPrefillTokens,
		"max_waiting_tokens":       20,
		"waiting_served_ratio":     0.3,
		"validation_workers":       2,
		"max_client_batch_size":    4,
		"router":                   "text-generation-router",
		"version":                  "3.3.5",
		"sha":                      nil,
		"docker_label":             nil,
	})
}
