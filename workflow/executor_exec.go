package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/template"
	"time"
)

// ExecOptions configure an ExecExecutor.
type ExecOptions struct {
	// Argv is the command line; each element is a text/template over the
	// Request (e.g. "--{{.Flag}}={{.To}}"). Argv[0] is the program.
	Argv []string
	// Timeout bounds one run (default 10m).
	Timeout time.Duration
	// Env is added to the agent's environment before the PERFAGENT_ variables.
	Env []string
	// ReadArgv, when set, is the command that prints an instance's current
	// value of the flag on its standard output (templated like Argv, run
	// with PERFAGENT_OPERATION=read). Without it Read returns
	// ErrReadUnsupported: Argv is never run for a read.
	ReadArgv []string
}

// ExecExecutor runs a program without a shell for each request. Besides the
// templated arguments it gets the request in the environment: PERFAGENT_WORKFLOW_ID,
// PERFAGENT_STAGE, PERFAGENT_INSTANCE, PERFAGENT_OPERATION, PERFAGENT_ENGINE,
// PERFAGENT_MODEL, PERFAGENT_FLAG, PERFAGENT_FROM, PERFAGENT_TO, PERFAGENT_UNIT
// and PERFAGENT_IDEMPOTENCY_KEY. Exit status 0 is success.
type ExecExecutor struct {
	opts     ExecOptions
	argv     []*template.Template
	readArgv []*template.Template
}

// NewExecExecutor parses the argument templates.
func NewExecExecutor(o ExecOptions) (*ExecExecutor, error) {
	if len(o.Argv) == 0 {
		return nil, errors.New("exec executor: empty argv")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	argv, err := parseArgv("argv", o.Argv)
	if err != nil {
		return nil, err
	}
	readArgv, err := parseArgv("read_argv", o.ReadArgv)
	if err != nil {
		return nil, err
	}
	return &ExecExecutor{opts: o, argv: argv, readArgv: readArgv}, nil
}

func parseArgv(name string, argv []string) ([]*template.Template, error) {
	var out []*template.Template
	for i, a := range argv {
		t, err := template.New(fmt.Sprintf("%s[%d]", name, i)).Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("exec executor: parse %s[%d] %q: %w", name, i, a, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Execute implements Executor.
func (e *ExecExecutor) Execute(ctx context.Context, r Request) error {
	var out boundedBuffer
	if err := e.run(ctx, e.argv, r, r.IdempotencyKey, &out, &out); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out.b))
	}
	return nil
}

// Read implements Reader: the first line ReadArgv prints is the value.
func (e *ExecExecutor) Read(ctx context.Context, r Request) (string, error) {
	if len(e.readArgv) == 0 {
		return "", ErrReadUnsupported
	}
	r.Operation, r.From, r.To, r.IdempotencyKey = OperationRead, "", "", ""
	what := "read " + r.Flag + " on " + r.Instance
	var stdout, stderr boundedBuffer
	if err := e.run(ctx, e.readArgv, r, what, &stdout, &stderr); err != nil {
		return "", fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.b))
	}
	line, _, _ := strings.Cut(string(stdout.b), "\n")
	if v := strings.TrimSpace(line); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("exec %s: printed no value", what)
}

// run renders argv over r and runs it with the request in the environment.
func (e *ExecExecutor) run(ctx context.Context, argv []*template.Template, r Request, what string, stdout, stderr *boundedBuffer) error {
	args := make([]string, len(argv))
	for i, t := range argv {
		var b bytes.Buffer
		if err := t.Execute(&b, r); err != nil {
			return fmt.Errorf("exec %s: render %s: %w", what, t.Name(), err)
		}
		args[i] = b.String()
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), e.opts.Env...),
		"PERFAGENT_WORKFLOW_ID="+r.WorkflowID,
		"PERFAGENT_STAGE="+r.Stage,
		"PERFAGENT_INSTANCE="+r.Instance,
		"PERFAGENT_OPERATION="+string(r.Operation),
		"PERFAGENT_ENGINE="+r.Engine,
		"PERFAGENT_MODEL="+r.Model,
		"PERFAGENT_FLAG="+r.Flag,
		"PERFAGENT_FROM="+r.From,
		"PERFAGENT_TO="+r.To,
		"PERFAGENT_UNIT="+r.Unit,
		"PERFAGENT_IDEMPOTENCY_KEY="+r.IdempotencyKey,
	)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("exec %s: run %s: %w", what, args[0], err)
	}
	return nil
}

// boundedBuffer keeps the first 4 KiB written to it.
type boundedBuffer struct{ b []byte }

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
