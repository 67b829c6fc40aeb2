// Command k8sschema writes kubeconform's schemas for the Kubernetes kinds the
// Helm chart renders, from the OpenAPI (v2) document that the Kubernetes
// source release ships (api/openapi-spec/swagger.json). kubeconform fetches
// its schemas from a web site by default; this machine and CI reach only
// package registries, so scripts/k8s.sh makes them from the Go module
// k8s.io/kubernetes at a pinned version instead.
//
// Each schema is standalone (every $ref inlined) and strict (an object with
// properties admits no others), like kubeconform's own "-standalone-strict"
// set, and named as kubeconform's -schema-location template
// "{{ .ResourceKind }}{{ .KindSuffix }}.json" expects.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	swagger := flag.String("swagger", "", "path of swagger.json")
	out := flag.String("out", "", "directory to write the schemas to")
	kinds := flag.String("kinds", "Deployment,Service,Secret,ServiceAccount,ConfigMap,HorizontalPodAutoscaler,PodDisruptionBudget,NetworkPolicy",
		"the kinds to write, comma-separated")
	flag.Parse()
	if err := run(*swagger, *out, strings.Split(*kinds, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "k8sschema:", err)
		os.Exit(1)
	}
}

type gvk struct{ Group, Version, Kind string }

func run(swaggerPath, out string, kinds []string) error {
	raw, err := os.ReadFile(swaggerPath)
	if err != nil {
		return err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", swaggerPath, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	c := converter{defs: doc.Definitions}
	written := 0
	for name, def := range doc.Definitions {
		for _, id := range groupVersionKinds(def) {
			if !slices.Contains(kinds, id.Kind) {
				continue
			}
			schema := c.inline(def, []string{name})
			data, err := json.MarshalIndent(schema, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, fileName(id)), data, 0o644); err != nil {
				return err
			}
			written++
		}
	}
	if written == 0 {
		return fmt.Errorf("no definition of %v in %s", kinds, swaggerPath)
	}
	fmt.Printf("k8sschema: wrote %d schemas to %s\n", written, out)
	return nil
}

// groupVersionKinds are the kinds a definition is the schema of.
func groupVersionKinds(def map[string]any) []gvk {
	list, _ := def["x-kubernetes-group-version-kind"].([]any)
	var ids []gvk
	for _, item := range list {
		m, _ := item.(map[string]any)
		g, _ := m["group"].(string)
		v, _ := m["version"].(string)
		k, _ := m["kind"].(string)
		ids = append(ids, gvk{g, v, k})
	}
	return ids
}

// fileName is kubeconform's name for a kind's schema: the kind in lower
// case, then the first label of the group, then the version.
func fileName(id gvk) string {
	suffix := "-" + strings.ToLower(id.Version)
	if id.Group != "" {
		suffix = "-" + strings.ToLower(strings.Split(id.Group, ".")[0]) + suffix
	}
	return strings.ToLower(id.Kind) + suffix + ".json"
}

type converter struct{ defs map[string]map[string]any }

// inline returns schema with every $ref replaced by its definition (a
// definition that refers to itself through its fields admits anything at
// the point of recursion), objects with properties made strict, every
// type admitting null (YAML's empty values), and Kubernetes' string formats
// that also take numbers turned into alternatives.
func (c converter) inline(schema map[string]any, path []string) map[string]any {
	out := map[string]any{}
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		if slices.Contains(path, name) {
			return map[string]any{}
		}
		return c.inline(c.defs[name], append(path, name))
	}
	for k, v := range schema {
		switch k {
		case "properties":
			props := map[string]any{}
			for pk, pv := range v.(map[string]any) {
				props[pk] = c.inline(pv.(map[string]any), path)
			}
			out[k] = props
		case "items", "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				out[k] = c.inline(m, path)
			} else {
				out[k] = v
			}
		case "x-kubernetes-group-version-kind", "x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy",
			"x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-unions":
		default:
			out[k] = v
		}
	}
	switch out["format"] {
	case "int-or-string":
		return map[string]any{"oneOf": []any{map[string]any{"type": []any{"string", "null"}}, map[string]any{"type": "integer"}}}
	}
	if len(path) > 0 && path[len(path)-1] == "io.k8s.apimachinery.pkg.api.resource.Quantity" {
		return map[string]any{"oneOf": []any{map[string]any{"type": []any{"string", "null"}}, map[string]any{"type": "number"}}}
	}
	if _, ok := out["properties"]; ok {
		if _, set := out["additionalProperties"]; !set {
			out["additionalProperties"] = false
		}
	}
	if t, ok := out["type"].(string); ok {
		out["type"] = []any{t, "null"}
	}
	return out
}
