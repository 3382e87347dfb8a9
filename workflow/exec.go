package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
}

// ExecExecutor runs a program without a shell for each request. Besides the
// templated arguments it gets the request in the environment: PERFAGENT_WORKFLOW_ID,
// PERFAGENT_STAGE, PERFAGENT_INSTANCE, PERFAGENT_OPERATION, PERFAGENT_ENGINE,
// PERFAGENT_MODEL, PERFAGENT_FLAG, PERFAGENT_FROM, PERFAGENT_TO, PERFAGENT_UNIT
// and PERFAGENT_IDEMPOTENCY_KEY. Exit status 0 is success.
type ExecExecutor struct {
	opts ExecOptions
	argv []*template.Template
}

// NewExecExecutor parses the argument templates.
func NewExecExecutor(o ExecOptions) (*ExecExecutor, error) {
	if len(o.Argv) == 0 {
		return nil, errors.New("exec executor: empty argv")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	e := &ExecExecutor{opts: o}
	for i, a := range o.Argv {
		t, err := template.New(fmt.Sprintf("argv[%d]", i)).Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("exec executor: parse argv[%d] %q: %w", i, a, err)
		}
		e.argv = append(e.argv, t)
	}
	return e, nil
}

// Execute implements Executor.
func (e *ExecExecutor) Execute(ctx context.Context, r Request) error {
	args := make([]string, len(e.argv))
	for i, t := range e.argv {
		var b bytes.Buffer
		if err := t.Execute(&b, r); err != nil {
			return fmt.Errorf("exec %s: render argv[%d]: %w", r.IdempotencyKey, i, err)
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
	var out boundedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("exec %s: run %s: %w: %s", r.IdempotencyKey, args[0], err, bytes.TrimSpace(out.b))
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
