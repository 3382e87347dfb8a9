package dashboards

// all are perfagent's dashboards.
func all() []spec { return []spec{fleet(), instance(), workflows(), agent()} }

// Generate builds every dashboard, keyed by its file name.
func Generate() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, s := range all() {
		b, err := s.build()
		if err != nil {
			return nil, err
		}
		out[s.file] = b
	}
	return out, nil
}
