package config

import (
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decoder turns attributes into Go values, collecting a diagnostic for each
// problem and carrying on. Each method leaves its destination untouched (so
// holding the default) when the attribute is absent, null or invalid, and
// reports whether it stored a value.
type decoder struct {
	diags hcl.Diagnostics
}

func (d *decoder) add(diag *hcl.Diagnostic) { d.diags = append(d.diags, diag) }

func (d *decoder) errorf(subject hcl.Range, summary, format string, args ...any) {
	d.add(problem(subject, summary, fmt.Sprintf(format, args...)))
}

// value evaluates attr (no variables or functions exist in ferry's language)
// and converts it to ty. ok is false when attr is nil or null (the default
// applies) or when a diagnostic was recorded.
func (d *decoder) value(attr *hcl.Attribute, ty cty.Type, want string) (v cty.Value, ok bool) {
	if attr == nil {
		return cty.NilVal, false
	}
	v, diags := attr.Expr.Value(nil)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() { // only after an error, but be safe
		return cty.NilVal, false
	}
	got := v.Type().FriendlyName()
	v, err := convert.Convert(v, ty)
	if err != nil {
		d.errorf(attr.Expr.Range(), "Incorrect attribute value type",
			"The %s attribute must be %s, not %s.", attr.Name, want, got)
		return cty.NilVal, false
	}
	return v, true
}

// str decodes a string attribute into dst. check, when not nil, validates the
// value and may normalise it; its error becomes the detail of a diagnostic
// summarised as summary.
func (d *decoder) str(attr *hcl.Attribute, dst *string, summary string, check func(string) (string, error)) bool {
	v, ok := d.value(attr, cty.String, "a string")
	if !ok {
		return false
	}
	s := v.AsString()
	if check != nil {
		norm, err := check(s)
		if err != nil {
			d.errorf(attr.Expr.Range(), summary, "%s.", err)
			return false
		}
		s = norm
	}
	*dst = s
	return true
}

// integer decodes a whole number in [min, max] into dst.
func (d *decoder) integer(attr *hcl.Attribute, dst *int, min, max int) bool {
	v, ok := d.value(attr, cty.Number, "a whole number")
	if !ok {
		return false
	}
	bf := v.AsBigFloat()
	rangeText := fmt.Sprintf("from %d to %d", min, max)
	if max == maxInt {
		rangeText = fmt.Sprintf("at least %d", min)
	}
	if !bf.IsInt() {
		d.errorf(attr.Expr.Range(), "Invalid number",
			"The %s attribute must be a whole number %s, not %s.", attr.Name, rangeText, bf.Text('g', 10))
		return false
	}
	if bf.Cmp(big.NewFloat(float64(min))) < 0 || bf.Cmp(big.NewFloat(float64(max))) > 0 {
		d.errorf(attr.Expr.Range(), "Number out of range",
			"The %s attribute must be %s, not %s.", attr.Name, rangeText, bf.Text('g', 10))
		return false
	}
	n, _ := bf.Int64()
	*dst = int(n)
	return true
}

// maxInt stands for "no upper bound" in integer.
const maxInt = int(^uint(0) >> 1)

// boolean decodes true or false into dst.
func (d *decoder) boolean(attr *hcl.Attribute, dst *bool) bool {
	v, ok := d.value(attr, cty.Bool, "true or false")
	if !ok {
		return false
	}
	*dst = v.True()
	return true
}

// durationRule says which durations an attribute accepts beyond "not
// negative".
type durationRule struct {
	zeroOK bool          // 0 is meaningful (it disables something)
	max    time.Duration // 0: no upper bound
}

var (
	positive    = durationRule{}
	nonNegative = durationRule{zeroOK: true}
)

// duration decodes a Go duration string ("1m30s") into dst.
func (d *decoder) duration(attr *hcl.Attribute, dst *time.Duration, rule durationRule) bool {
	v, ok := d.value(attr, cty.String, `a duration string such as "5s"`)
	if !ok {
		return false
	}
	dur, err := parseDuration(v.AsString(), rule)
	if err != nil {
		d.errorf(attr.Expr.Range(), "Invalid duration", "The %s attribute %s.", attr.Name, err)
		return false
	}
	*dst = dur
	return true
}

// parseDuration parses s with time.ParseDuration and applies rule. Its error
// completes the sentence "The x attribute ...".
func parseDuration(s string, rule durationRule) (time.Duration, error) {
	dur, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("must be a duration: a number and a unit (ns, us, ms, s, m, h), such as %q or %q, not %q", "5s", "1m30s", s)
	}
	if dur < 0 {
		return 0, fmt.Errorf("must not be negative, not %q", s)
	}
	if dur == 0 && !rule.zeroOK {
		return 0, fmt.Errorf("must be greater than zero, such as %q, not %q", "5s", s)
	}
	if rule.max > 0 && dur > rule.max {
		return 0, fmt.Errorf("must be at most %s, not %q", rule.max, s)
	}
	return dur, nil
}

// strList decodes a list of strings, checking each element (check may be
// nil). An element's diagnostic points at that element when it can.
func (d *decoder) strList(attr *hcl.Attribute, dst *[]string, summary string, check func(string) error) bool {
	v, ok := d.value(attr, cty.List(cty.String), "a list of strings")
	if !ok {
		return false
	}
	out := make([]string, 0, v.LengthInt())
	good := true
	for i, el := range v.AsValueSlice() {
		rng := elementRange(attr.Expr, i)
		if el.IsNull() {
			d.errorf(rng, summary, "The elements of %s must be strings, not null.", attr.Name)
			good = false
			continue
		}
		if check != nil {
			if err := check(el.AsString()); err != nil {
				d.errorf(rng, summary, "%s.", err)
				good = false
				continue
			}
		}
		out = append(out, el.AsString())
	}
	if good {
		*dst = out
	}
	return good
}

// strMap decodes a map of strings, checking each key and value (check may be
// nil). A diagnostic points at the offending item when it can.
func (d *decoder) strMap(attr *hcl.Attribute, dst *map[string]string, summary string, check func(k, v string) error) bool {
	v, ok := d.value(attr, cty.Map(cty.String), "a map of strings, such as { team = \"orders\" }")
	if !ok {
		return false
	}
	out := make(map[string]string, v.LengthInt())
	good := true
	for it := v.ElementIterator(); it.Next(); { // in key order
		kv, el := it.Element()
		k := kv.AsString()
		rng := itemRange(attr.Expr, k)
		if el.IsNull() {
			d.errorf(rng, summary, "The values of %s must be strings, not null (key %q).", attr.Name, k)
			good = false
			continue
		}
		if check != nil {
			if err := check(k, el.AsString()); err != nil {
				d.errorf(rng, summary, "%s.", err)
				good = false
				continue
			}
		}
		out[k] = el.AsString()
	}
	if good {
		*dst = out
	}
	return good
}

// elementRange is the range of the i-th element of a list literal, or of the
// whole expression when it is not a literal.
func elementRange(expr hcl.Expression, i int) hcl.Range {
	if t, ok := expr.(*hclsyntax.TupleConsExpr); ok && i < len(t.Exprs) {
		return t.Exprs[i].Range()
	}
	return expr.Range()
}

// itemRange is the range of the item with key k in an object literal, or of
// the whole expression when it cannot be found.
func itemRange(expr hcl.Expression, k string) hcl.Range {
	o, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return expr.Range()
	}
	for _, item := range o.Items {
		kv, diags := item.KeyExpr.Value(nil)
		if diags.HasErrors() || kv.IsNull() || !kv.IsKnown() {
			continue
		}
		kv, err := convert.Convert(kv, cty.String)
		if err != nil || kv.IsNull() {
			continue
		}
		if kv.AsString() == k {
			return hcl.RangeBetween(item.KeyExpr.Range(), item.ValueExpr.Range())
		}
	}
	return expr.Range()
}

// oneOf returns a check accepting exactly the given values.
func oneOf(what string, allowed ...string) func(string) (string, error) {
	return func(s string) (string, error) {
		for _, a := range allowed {
			if s == a {
				return s, nil
			}
		}
		return "", reject("The %s attribute must be one of %s, not %q", what, quoteList(allowed), s)
	}
}

// quoteList renders ["a", "b", "c"] as `"a", "b" or "c"`.
func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
