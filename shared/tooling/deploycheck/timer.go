package deploycheck

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

var (
	// cronTZ is the optional time-zone prefix of an FC cron expression
	// ("CRON_TZ=Asia/Shanghai 0 0 3 * * *").
	cronTZ = regexp.MustCompile(`^CRON_TZ=[A-Za-z0-9_+\-/]+$`)
	// cronField is one field of the six (seconds minutes hours day-of-month
	// month day-of-week): digits, names, * ? , - and /.
	cronField = regexp.MustCompile(`^[A-Za-z0-9*?,/\-]+$`)
)

// timer checks what fc3's ITimerTriggerConfig schema leaves out: that
// cronExpression is one FC accepts ("@every <duration>" of at least a
// minute, or six cron fields after an optional CRON_TZ=<zone>; s does not
// check it either), and that the payload, which the function decodes, is a
// JSON object.
func (c *checker) timer(r, p string, cfg map[string]any) {
	if cfg == nil {
		c.add(r, p, "missing")
		return
	}
	switch expr, ok := cfg["cronExpression"].(string); {
	case !ok:
		c.add(r, join(p, "cronExpression"), "missing or not a string: a timer trigger needs one")
	default:
		if msg := checkCron(expr); msg != "" {
			c.add(r, join(p, "cronExpression"), "%q: %s", expr, msg)
		}
	}
	if payload, ok := cfg["payload"].(string); ok && strings.TrimSpace(payload) != "" {
		var v any
		if err := json.Unmarshal([]byte(payload), &v); err != nil {
			c.add(r, join(p, "payload"), "not valid JSON (the function decodes it): %v", err)
		} else if _, ok := v.(map[string]any); !ok {
			c.add(r, join(p, "payload"), "must be a JSON object")
		}
	}
}

// checkCron says what is wrong with an FC timer expression, or "".
func checkCron(expr string) string {
	expr = strings.TrimSpace(expr)
	if rest, ok := strings.CutPrefix(expr, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		switch {
		case err != nil:
			return "@every takes a duration such as 4m or 1h30m"
		case d < time.Minute:
			return "the shortest interval is one minute"
		}
		return ""
	}
	fields := strings.Fields(expr)
	if len(fields) > 0 && strings.HasPrefix(fields[0], "CRON_TZ=") {
		if !cronTZ.MatchString(fields[0]) {
			return "CRON_TZ= takes a time zone name such as Asia/Shanghai"
		}
		fields = fields[1:]
	}
	if len(fields) != 6 {
		return "want six fields (seconds minutes hours day-of-month month day-of-week), optionally after CRON_TZ=<zone>, or @every <duration>"
	}
	for _, f := range fields {
		if !cronField.MatchString(f) {
			return "field " + f + " holds a character cron does not use"
		}
	}
	return ""
}
