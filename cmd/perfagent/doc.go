// Command perfagent is the performance agent for LLM inference fleets. It
// parses flags, loads and reloads the configuration, wires the components
// together and runs them; it holds no domain logic.
package main
