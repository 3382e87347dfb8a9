package v1

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/prometheus/prometheus/model/labels"
	"go.yaml.in/yaml/v3"
)

// op documents one route: the OpenAPI description is built from the same
// table the router is, so every route is described and every description
// names the types the handler reads and writes.
type op struct {
	summary string
	// query parameters.
	query []param
	// body is a value of the request body's type; nil for none.
	body any
	// required are the body's fields a request must have; the rest may be
	// left out.
	required []string
	// resp is a value of the type of the envelope's data.
	resp any
	// auth marks routes that change state: they need an authenticated
	// user (basic auth of --web.config.file).
	auth bool
}

// param is a query parameter.
type param struct {
	name, description string
	// repeated parameters may be given several times.
	repeated bool
}

var pathParam = regexp.MustCompile(`\{(\w+)\}`)

// OpenAPI builds the OpenAPI 3 description of the routes the API
// registers with its options.
func (a *API) OpenAPI() (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{
			Title:   "perfagent API",
			Version: a.o.Version,
			Description: "The HTTP API of perfagent, the performance agent for LLM inference fleets. " +
				"Every answer is the envelope of Prometheus's HTTP API: status success with data, or status error with errorType and error. " +
				"Fields inside data are snake_case; numbers of seconds end in _seconds; times are RFC 3339. " +
				"Request bodies are read as JSON whatever their Content-Type, so curl -d works. " +
				"Lists (instances, targets, bottlenecks, recommendations) are paginated: limit sets the page size (default " + strconv.Itoa(DefaultLimit) + ", 0 for every item), " +
				"and the next_page_token of a page, sent back as page_token, asks for the next; the last page has none. " +
				"The read endpoints answer as of the last cycle, each answer built once per cycle; answers of 1 KiB or more are gzipped when Accept-Encoding allows it. " +
				"Expensive requests (collections, rule evaluations and recommendation passes on demand) are served a few at a time; more are refused with 429 and a Retry-After.",
		},
		Servers:    openapi3.Servers{{URL: "/api/v1"}},
		Paths:      openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: openapi3.Schemas{}, SecuritySchemes: openapi3.SecuritySchemes{}},
	}
	doc.Components.SecuritySchemes["basicAuth"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().WithType("http").WithScheme("basic").
		WithDescription("A user of the agent's --web.config.file. Required by every request when the file has users; requests that change state also need a configured approver where the route says so.")}
	// Each request and answer type is one component schema, with the
	// types inside it inline.
	var schemaOf func(v any) (*openapi3.SchemaRef, error)
	schemaOf = func(v any) (*openapi3.SchemaRef, error) {
		t := reflect.TypeOf(v)
		if t.Kind() == reflect.Slice {
			items, err := schemaOf(reflect.Zero(t.Elem()).Interface())
			if err != nil {
				return nil, err
			}
			return openapi3.NewArraySchema().WithItems(items.Value).NewRef(), nil
		}
		name := t.Name()
		if _, ok := doc.Components.Schemas[name]; !ok {
			ref, err := openapi3gen.NewGenerator(openapi3gen.SchemaCustomizer(customizeSchema)).NewSchemaRefForValue(v, nil)
			if err != nil {
				return nil, fmt.Errorf("describing %s: %w", t, err)
			}
			doc.Components.Schemas[name] = ref
		}
		return openapi3.NewSchemaRef("#/components/schemas/"+name, doc.Components.Schemas[name].Value), nil
	}
	errorRef, err := schemaOf(errorEnvelope{})
	if err != nil {
		return nil, err
	}
	for _, rt := range a.routes() {
		o := openapi3.NewOperation()
		o.OperationID = operationID(rt.method, rt.path)
		o.Summary = rt.doc.summary
		o.Tags = []string{strings.Split(strings.TrimPrefix(rt.path, "/"), "/")[0]}
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			o.AddParameter(openapi3.NewPathParameter(m[1]).WithSchema(openapi3.NewStringSchema()))
		}
		for _, p := range rt.doc.query {
			s := openapi3.NewStringSchema()
			if p.repeated {
				s = openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema())
			}
			o.AddParameter(openapi3.NewQueryParameter(p.name).WithDescription(p.description).WithSchema(s))
		}
		if rt.doc.body != nil {
			ref, err := schemaOf(rt.doc.body)
			if err != nil {
				return nil, fmt.Errorf("%s %s: request body: %w", rt.method, rt.path, err)
			}
			// What a client must send is not what a handler always sends.
			optional(ref.Value)
			ref.Value.Required = rt.doc.required
			o.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithJSONSchemaRef(ref)}
		}
		data, err := schemaOf(rt.doc.resp)
		if err != nil {
			return nil, fmt.Errorf("%s %s: response: %w", rt.method, rt.path, err)
		}
		success := openapi3.NewObjectSchema().
			WithProperty("status", openapi3.NewStringSchema().WithEnum("success")).
			WithPropertyRef("data", data)
		success.Required = []string{"status", "data"}
		success.AdditionalProperties = openapi3.AdditionalProperties{Has: new(false)}
		o.AddResponse(http.StatusOK, openapi3.NewResponse().WithDescription("success").WithJSONSchema(success))
		o.Responses.Set("default", &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription("an error: 400 bad_data (the field is named), 401/403 (authentication, approvers), 404 not_found, 409 conflict, 422 unprocessable, 429 too_many_requests (with Retry-After), 500 internal, 503 unavailable").
			WithContent(openapi3.NewContentWithJSONSchemaRef(errorRef))})
		if rt.doc.auth {
			o.Security = &openapi3.SecurityRequirements{{"basicAuth": []string{}}}
		}
		item := doc.Paths.Value(rt.path)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(rt.path, item)
		}
		item.SetOperation(rt.method, o)
	}
	strictObjects(doc.Components.Schemas)
	return doc, nil
}

// errorEnvelope is the answer of a failed request.
type errorEnvelope struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.Split(path, "/") {
		part = strings.Trim(part, "{}")
		for _, w := range strings.FieldsFunc(part, func(r rune) bool { return r == '-' || r == '_' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

var (
	labelsType        = reflect.TypeFor[labels.Labels]()
	timeType          = reflect.TypeFor[time.Time]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
)

// customizeSchema gives types that marshal themselves the schema of what
// they write, and marks the fields that are always sent as required (and
// nullable where Go sends a nil slice or map as null).
func customizeSchema(_ string, t reflect.Type, tag reflect.StructTag, s *openapi3.Schema) error {
	switch {
	case t == labelsType:
		*s = *openapi3.NewObjectSchema().WithAdditionalProperties(openapi3.NewStringSchema())
		return nil
	case t == timeType:
		return nil
	case t.Kind() != reflect.Struct && (t.Implements(textMarshalerType) || t.Implements(jsonMarshalerType)):
		*s = *openapi3.NewStringSchema()
	}
	if name, _, _ := strings.Cut(tag.Get("json"), ","); name != "" && (t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Pointer) {
		s.Nullable = true
	}
	if t.Kind() == reflect.Struct && t != timeType {
		for _, f := range jsonFields(t) {
			if _, ok := s.Properties[f.name]; ok && !f.optional && !slices.Contains(s.Required, f.name) {
				s.Required = append(s.Required, f.name)
			}
		}
	}
	return nil
}

type jsonField struct {
	name     string
	optional bool
}

// jsonFields lists the JSON fields of a struct as encoding/json writes
// them, embedded structs' fields included.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, jsonFields(ft)...)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, optional: strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")})
	}
	return out
}

// optional drops the required fields of s and the schemas inside it.
func optional(s *openapi3.Schema) {
	if s == nil {
		return
	}
	s.Required = nil
	s.Nullable = false
	for _, p := range s.Properties {
		optional(p.Value)
	}
	if s.Items != nil {
		optional(s.Items.Value)
	}
}

// strictObjects forbids properties a schema does not list, so that a
// handler that sends a field the description lacks fails validation.
func strictObjects(schemas openapi3.Schemas) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Schema == nil {
			s.AdditionalProperties = openapi3.AdditionalProperties{Has: new(false)}
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
	}
	for _, s := range schemas {
		walk(s)
	}
}

// openAPIHandler serves the description as JSON or YAML. The routes are
// fixed when the API is built, so each encoding is made once.
func (a *API) openAPIHandler(asYAML bool) http.HandlerFunc {
	encode := sync.OnceValues(func() ([]byte, error) {
		doc, err := a.OpenAPI()
		if err != nil {
			return nil, fmt.Errorf("building the OpenAPI description: %w", err)
		}
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil || !asYAML {
			return b, err
		}
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("encoding the OpenAPI description: %w", err)
		}
		var out bytes.Buffer
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		err = enc.Encode(v)
		return out.Bytes(), err
	})
	contentType := "application/json"
	if asYAML {
		contentType = "application/yaml"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := encode()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	}
}
