// Package simulator owns simulated vLLM, SGLang and TGI servers: a seeded step model of
// continuous batching, their exact Prometheus expositions, info and admin endpoints, and a
// library of scenarios with ground truth. It must not import perfagent's other packages or read the clock.
package simulator
