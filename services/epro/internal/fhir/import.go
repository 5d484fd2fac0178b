// Package fhir maps TrialHub questionnaires to and from HL7 FHIR R4: Import reads a
// FHIR R4 Questionnaire JSON document into the questionnaire model, refusing every
// part the model cannot represent (never dropping it silently), and
// ExportResponse writes a de-identified response as a FHIR R4
// QuestionnaireResponse, with study days in place of dates.
package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	q "github.com/trialhub/trialhub/services/epro/internal/questionnaire"
)

// Extension URLs read on import (FHIR R4 core extensions).
const (
	OrdinalValueURL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
	// ISO21090COValueURL is the STU3 name of ordinalValue, still used by published
	// LOINC forms.
	ISO21090COValueURL = "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value"
	ItemWeightURL      = "http://hl7.org/fhir/StructureDefinition/itemWeight"
	MinValueURL        = "http://hl7.org/fhir/StructureDefinition/minValue"
	MaxValueURL        = "http://hl7.org/fhir/StructureDefinition/maxValue"
	UnitURL            = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
	TranslationURL     = "http://hl7.org/fhir/StructureDefinition/translation"
)

// ageCodes are the LOINC codes of an age in years; items coded so are marked Age and
// de-identified as 90+ above 89.
var ageCodes = []string{"30525-0", "21612-7"}

// ignoredMetadata are Questionnaire elements that describe the document, not what a
// patient answers or how it scores; Import accepts and does not keep them (the
// canonical url and version name the definition). Every other element it does not
// map is refused.
var ignoredMetadata = []string{"id", "meta", "text", "status", "date", "publisher", "contact",
	"experimental", "jurisdiction", "purpose", "subjectType", "useContext", "identifier",
	"approvalDate", "lastReviewDate", "effectivePeriod"}

// Part is one part of a document Import refused: its path (FHIRPath-like, e.g.
// "Questionnaire.item[2].answerValueSet") and why.
type Part struct {
	Path   string
	Reason string
}

// Unsupported is Import's error when the document has parts the model cannot
// represent or that are malformed: every one of them, in document order.
type Unsupported struct {
	Parts []Part
}

func (e *Unsupported) Error() string {
	s := make([]string, len(e.Parts))
	for i, p := range e.Parts {
		s[i] = p.Path + ": " + p.Reason
	}
	return fmt.Sprintf("questionnaire has %d unsupported part(s): %s", len(e.Parts), strings.Join(s, "; "))
}

type importer struct {
	parts []Part
}

func (im *importer) refuse(path, format string, args ...any) {
	im.parts = append(im.parts, Part{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// obj is one JSON object being read: every key read is marked used, and done
// refuses the rest.
type obj struct {
	im   *importer
	path string
	m    map[string]any
	used map[string]bool
}

func (im *importer) object(path string, v any) *obj {
	m, ok := v.(map[string]any)
	if !ok {
		im.refuse(path, "expected an object")
		return nil
	}
	return &obj{im: im, path: path, m: m, used: map[string]bool{}}
}

func (o *obj) has(key string) bool { _, ok := o.m[key]; return ok }

func (o *obj) get(key string) (any, bool) {
	v, ok := o.m[key]
	if ok {
		o.used[key] = true
	}
	return v, ok
}

func (o *obj) str(key string) string {
	v, ok := o.get(key)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		o.im.refuse(o.path+"."+key, "expected a string")
	}
	return s
}

func (o *obj) boolean(key string) bool {
	v, ok := o.get(key)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		o.im.refuse(o.path+"."+key, "expected true or false")
	}
	return b
}

func (o *obj) number(key string) (json.Number, bool) {
	v, ok := o.get(key)
	if !ok {
		return "", false
	}
	n, ok := v.(json.Number)
	if !ok {
		o.im.refuse(o.path+"."+key, "expected a number")
	}
	return n, ok
}

func (o *obj) integer(key string) (int64, bool) {
	n, ok := o.number(key)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
		o.im.refuse(o.path+"."+key, "expected a 32-bit integer")
		return 0, false
	}
	return i, true
}

// each calls fn for every element of the array at key, with its path.
func (o *obj) each(key string, fn func(path string, v any)) {
	v, ok := o.get(key)
	if !ok {
		return
	}
	arr, ok := v.([]any)
	if !ok {
		o.im.refuse(o.path+"."+key, "expected an array")
		return
	}
	for i, e := range arr {
		fn(fmt.Sprintf("%s.%s[%d]", o.path, key, i), e)
	}
}

// ignore marks keys as read.
func (o *obj) ignore(keys ...string) {
	for _, k := range keys {
		o.get(k)
	}
}

// done refuses every key not read, in sorted order.
func (o *obj) done() {
	var rest []string
	for k := range o.m {
		if !o.used[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		o.im.refuse(o.path+"."+k, "not supported")
	}
}

// extensions reads the extension array at key, calling handle for each; handle
// reports whether it understood the extension, and unknown ones are refused
// naming their url.
func (o *obj) extensions(key string, handle func(path, url string, e *obj) bool) {
	o.each(key, func(path string, v any) {
		e := o.im.object(path, v)
		if e == nil {
			return
		}
		url := e.str("url")
		if !handle(path, url, e) {
			o.im.refuse(path, "extension %s not supported", url)
			return
		}
		e.done()
	})
}

// Import reads a FHIR R4 Questionnaire (JSON) into a definition: url, version,
// name, title, description, language, copyright, code; items with linkId, prefix,
// text (and translations through the translation extension on _text), type,
// code, required, repeats, maxLength, answerOption (valueCoding, valueInteger,
// valueString; scores from the ordinalValue, iso21090-CO-value or itemWeight
// extension on the option or its coding), enableWhen with enableBehavior, the
// minValue / maxValue and questionnaire-unit extensions, and nested items. The
// document metadata in ignoredMetadata is accepted and not kept. Anything else is
// refused: the error is an *Unsupported listing every part. A document that maps
// but breaks a model rule (e.g. an enableWhen naming a later item) returns the
// *questionnaire.Invalid of Definition.Validate. FHIR does not carry scoring rules
// in a form the model reads (calculatedExpression is FHIRPath), so the caller adds
// Rules and Alerts and validates again.
func Import(doc []byte) (*q.Definition, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("read questionnaire: %w", err)
	}
	if dec.More() {
		return nil, errors.New("read questionnaire: more than one JSON value")
	}
	im := &importer{}
	d := im.questionnaire(v)
	if len(im.parts) > 0 {
		return nil, &Unsupported{Parts: im.parts}
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

func (im *importer) questionnaire(v any) *q.Definition {
	o := im.object("Questionnaire", v)
	if o == nil {
		return nil
	}
	if rt := o.str("resourceType"); rt != "Questionnaire" {
		im.refuse("Questionnaire.resourceType", "expected Questionnaire, got %q", rt)
	}
	d := &q.Definition{
		URL: o.str("url"), Version: o.str("version"), Name: o.str("name"), Title: o.str("title"),
		Description: o.str("description"), Language: o.str("language"), Copyright: o.str("copyright"),
	}
	if d.Language == "" {
		// FHIR's default for a resource without a language; the model needs one.
		d.Language = "en"
	}
	d.Code = im.codes(o, "code")
	o.ignore(ignoredMetadata...)
	o.each("item", func(path string, v any) {
		if it, ok := im.item(path, v, d.Language); ok {
			d.Items = append(d.Items, it)
		}
	})
	o.done()
	return d
}

// codes reads an array of Coding of which the model keeps one: a second is refused.
func (im *importer) codes(o *obj, key string) *q.Coding {
	var out *q.Coding
	o.each(key, func(path string, v any) {
		if out != nil {
			im.refuse(path, "only one code is supported")
			return
		}
		c := im.coding(path, v)
		out = &c
	})
	return out
}

func (im *importer) coding(path string, v any) q.Coding {
	o := im.object(path, v)
	if o == nil {
		return q.Coding{}
	}
	c := q.Coding{System: o.str("system"), Code: o.str("code"), Display: o.str("display")}
	o.ignore("version", "userSelected")
	o.done()
	return c
}

func (im *importer) item(path string, v any, lang string) (q.Item, bool) {
	o := im.object(path, v)
	if o == nil {
		return q.Item{}, false
	}
	it := q.Item{LinkID: o.str("linkId"), Prefix: o.str("prefix"), Required: o.boolean("required"), Repeats: o.boolean("repeats")}
	ty := o.str("type")
	t, ok := q.ParseType(ty)
	if !ok {
		im.refuse(path+".type", "item type %q not supported", ty)
	}
	it.Type = t
	if text := o.str("text"); text != "" || o.has("_text") {
		it.Text = q.Localized{lang: text}
		im.translations(o, "_text", it.Text)
	}
	it.Code = im.codes(o, "code")
	if it.Code != nil && it.Code.System == "http://loinc.org" && slices.Contains(ageCodes, it.Code.Code) {
		it.Age = true
	}
	if n, ok := o.integer("maxLength"); ok {
		it.MaxLength = int(n)
	}
	o.each("answerOption", func(p string, v any) {
		if opt, ok := im.option(p, v); ok {
			it.Options = append(it.Options, opt)
		}
	})
	o.each("enableWhen", func(p string, v any) {
		if c, ok := im.condition(p, v); ok {
			it.EnableWhen = append(it.EnableWhen, c)
		}
	})
	switch b := o.str("enableBehavior"); b {
	case "":
	case "all":
		it.Behavior = q.All
	case "any":
		it.Behavior = q.Any
	default:
		im.refuse(path+".enableBehavior", "expected all or any, got %q", b)
	}
	o.extensions("extension", func(p, url string, e *obj) bool {
		switch url {
		case MinValueURL, MaxValueURL:
			val, ok := im.value(p, e, "value")
			if ok && url == MinValueURL {
				it.Min = &val
			} else if ok {
				it.Max = &val
			}
		case UnitURL:
			c := im.codingAt(e, "valueCoding")
			it.Unit = &c
		default:
			return false
		}
		return true
	})
	o.each("item", func(p string, v any) {
		if child, ok := im.item(p, v, lang); ok {
			it.Items = append(it.Items, child)
		}
	})
	o.done()
	return it, true
}

func (im *importer) codingAt(o *obj, key string) q.Coding {
	v, ok := o.get(key)
	if !ok {
		im.refuse(o.path+"."+key, "missing")
		return q.Coding{}
	}
	return im.coding(o.path+"."+key, v)
}

// translations reads the translation extensions of a primitive's element (_text)
// into t.
func (im *importer) translations(o *obj, key string, t q.Localized) {
	v, ok := o.get(key)
	if !ok {
		return
	}
	el := im.object(o.path+"."+key, v)
	if el == nil {
		return
	}
	el.extensions("extension", func(p, url string, e *obj) bool {
		if url != TranslationURL {
			return false
		}
		var lang, content string
		e.extensions("extension", func(_, sub string, s *obj) bool {
			switch sub {
			case "lang":
				lang = s.str("valueCode")
			case "content":
				content = s.str("valueString")
			default:
				return false
			}
			return true
		})
		if lang == "" || content == "" {
			im.refuse(p, "a translation needs lang and content")
		} else {
			t[lang] = content
		}
		return true
	})
	el.done()
}

// value reads the one value[x] of o with the given prefix ("value", "answer"):
// valueBoolean, valueDecimal, valueInteger, valueDate, valueDateTime, valueTime,
// valueString, valueUri, valueCoding, valueQuantity. Any other variant is refused.
func (im *importer) value(path string, o *obj, prefix string) (q.Value, bool) {
	var found []string
	for k := range o.m {
		if strings.HasPrefix(k, prefix) && len(k) > len(prefix) && k[len(prefix)] >= 'A' && k[len(prefix)] <= 'Z' {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		im.refuse(path, "expected exactly one %s[x], found %d", prefix, len(found))
		return q.Value{}, false
	}
	key := found[0]
	kp := path + "." + key
	switch strings.TrimPrefix(key, prefix) {
	case "Boolean":
		return q.Bool(o.boolean(key)), true
	case "Decimal":
		n, ok := o.number(key)
		return q.Dec(n.String()), ok
	case "Integer":
		i, ok := o.integer(key)
		return q.Int(i), ok
	case "Date":
		return q.DateOf(o.str(key)), true
	case "DateTime":
		s := o.str(key)
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			im.refuse(kp, "only a full date-time with zone is supported")
			return q.Value{}, false
		}
		return q.Instant(t), true
	case "Time":
		return q.TimeOf(o.str(key)), true
	case "String":
		return q.Str(o.str(key)), true
	case "Uri":
		return q.URI(o.str(key)), true
	case "Coding":
		return q.Code(im.codingAt(o, key)), true
	case "Quantity":
		v, _ := o.get(key)
		qo := im.object(kp, v)
		if qo == nil {
			return q.Value{}, false
		}
		n, _ := qo.number("value")
		a := q.Amount{Value: n.String(), Unit: qo.str("unit"), System: qo.str("system"), Code: qo.str("code")}
		qo.done()
		return q.Quant(a), true
	}
	o.get(key)
	im.refuse(kp, "value type not supported")
	return q.Value{}, false
}

// scoreExtension reads an ordinal score extension, reporting whether url is one.
func (im *importer) scoreExtension(url string, e *obj, score **float64) bool {
	if url != OrdinalValueURL && url != ISO21090COValueURL && url != ItemWeightURL {
		return false
	}
	n, ok := e.number("valueDecimal")
	if !ok {
		if n, ok = e.number("valueInteger"); !ok {
			im.refuse(e.path, "a score extension needs valueDecimal")
			return true
		}
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) {
		im.refuse(e.path, "the score is not a finite number")
		return true
	}
	if *score != nil {
		im.refuse(e.path, "the option already has a score")
		return true
	}
	*score = &f
	return true
}

func (im *importer) option(path string, v any) (q.Option, bool) {
	o := im.object(path, v)
	if o == nil {
		return q.Option{}, false
	}
	var opt q.Option
	switch {
	case o.has("valueCoding"):
		cv, _ := o.get("valueCoding")
		co := im.object(path+".valueCoding", cv)
		if co == nil {
			return opt, false
		}
		c := q.Coding{System: co.str("system"), Code: co.str("code"), Display: co.str("display")}
		co.ignore("version", "userSelected")
		co.extensions("extension", func(_, url string, e *obj) bool { return im.scoreExtension(url, e, &opt.Score) })
		co.done()
		opt.Value = q.Code(c)
	case o.has("valueInteger"), o.has("valueString"):
		val, ok := im.value(path, o, "value")
		if !ok {
			return opt, false
		}
		opt.Value = val
	default:
		im.refuse(path, "an answer option is valueCoding, valueInteger or valueString")
	}
	o.extensions("extension", func(_, url string, e *obj) bool { return im.scoreExtension(url, e, &opt.Score) })
	o.done()
	return opt, true
}

func (im *importer) condition(path string, v any) (q.Condition, bool) {
	o := im.object(path, v)
	if o == nil {
		return q.Condition{}, false
	}
	c := q.Condition{Question: o.str("question")}
	code := o.str("operator")
	op, ok := q.ParseOperator(code)
	if !ok {
		im.refuse(path+".operator", "operator %q not supported", code)
	}
	c.Op = op
	c.Answer, ok = im.value(path, o, "answer")
	o.done()
	return c, ok
}
