package workflow

import (
	"context"
	"fmt"
	"time"
)

// Guardrail thresholds checked on every tick while changed instances serve
// traffic (warm-up, analysis, stage gate, verification): the canary's error
// ratio breaches when it is above GuardrailErrorRatio and, when unchanged
// instances of the pool or the baseline serve, above their error ratio
// plus GuardrailErrorMargin.
// GuardrailTicks consecutive breaches roll back without waiting for the
// end of the window.
const (
	GuardrailErrorRatio  = 0.02
	GuardrailErrorMargin = 0.01
	GuardrailTicks       = 3
)

// guard checks the fast guardrail and records the count of consecutive
// breaches. handled reports that it rolled the workflow back (or failed);
// otherwise the caller goes on with the step of the state.
func (c *Controller) guard(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (n Workflow, moved, handled bool, err error) {
	canaries := w.Changed()
	if len(canaries) == 0 {
		return w, false, false, nil
	}
	// One look per tick, however many states the workflow passes through.
	if last, ok := c.guardedAt[w.ID]; ok && !now.After(last) {
		return w, false, false, nil
	}
	c.guardedAt[w.ID] = now
	value := func(instances []string) (float64, bool) {
		expr := "avg(" + selector("llm_request_error_ratio", w.Change.Engine, w.Change.Model, instances, "") + ")"
		v, err := c.opts.Source.Query(ctx, expr, now)
		if err != nil || len(v) == 0 {
			// Errors and missing data are the analysis' business.
			return 0, false
		}
		return v[0].F, true
	}
	canary, ok := value(canaries)
	if !ok {
		return w, false, false, nil
	}
	limit := GuardrailErrorRatio
	if base := append(w.Untouched(), w.Baseline...); len(base) > 0 {
		if b, ok := value(base); ok {
			limit = max(limit, b+GuardrailErrorMargin)
		}
	}
	breached := canary > limit
	if !breached && w.GuardrailBreaches == 0 {
		return w, false, false, nil
	}
	n, err = c.opts.Store.Update(w.ID, func(x Workflow) (Workflow, error) {
		if x.State != w.State {
			return x, errUnchanged
		}
		if breached {
			x.GuardrailBreaches++
		} else {
			x.GuardrailBreaches = 0
		}
		return x, nil
	})
	if err != nil {
		return w, false, true, err
	}
	if n.GuardrailBreaches < GuardrailTicks {
		return n, false, false, nil
	}
	n, moved, err = fire(EventGuardrailBreached, fmt.Sprintf("error ratio %.4f above %.4f on %d consecutive ticks", canary, limit, n.GuardrailBreaches), nil)
	return n, moved, true, err
}
