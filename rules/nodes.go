package rules

import (
	"go.yaml.in/yaml/v3"
)

// docNodes are the YAML nodes of a rule file that perfagent's own checks
// point at, in document order, aligned with rulefmt's groups and rules.
type docNodes struct {
	groups []groupNodes
}

type groupNodes struct {
	node   *yaml.Node
	name   string
	labels *yaml.Node // the group's labels mapping, or nil
	rules  []ruleNodes
}

type ruleNodes struct {
	node           *yaml.Node // the rule mapping
	name           *yaml.Node // value of alert or record
	expr           *yaml.Node
	labelsKey      *yaml.Node
	labels         *yaml.Node
	annotationsKey *yaml.Node
	annotations    *yaml.Node
}

// parseNodes reads the node tree of a rule file; a file rulefmt accepted
// always parses.
func parseNodes(content []byte) (*docNodes, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(content, &root); err != nil {
		return nil, err
	}
	doc := &docNodes{}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return doc, nil
	}
	_, groups := mappingEntry(root.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return doc, nil
	}
	for _, g := range groups.Content {
		gn := groupNodes{node: g}
		if _, v := mappingEntry(g, "name"); v != nil {
			gn.name = v.Value
		}
		_, gn.labels = mappingEntry(g, "labels")
		if _, rs := mappingEntry(g, "rules"); rs != nil && rs.Kind == yaml.SequenceNode {
			for _, r := range rs.Content {
				rn := ruleNodes{node: r}
				if _, v := mappingEntry(r, "alert"); v != nil {
					rn.name = v
				} else if _, v := mappingEntry(r, "record"); v != nil {
					rn.name = v
				}
				_, rn.expr = mappingEntry(r, "expr")
				rn.labelsKey, rn.labels = mappingEntry(r, "labels")
				rn.annotationsKey, rn.annotations = mappingEntry(r, "annotations")
				gn.rules = append(gn.rules, rn)
			}
		}
		doc.groups = append(doc.groups, gn)
	}
	return doc, nil
}

// rule returns the nodes of the i-th rule (0-based) of the first group
// named group, or nil.
func (d *docNodes) rule(group string, i int) *ruleNodes {
	for gi := range d.groups {
		g := &d.groups[gi]
		if g.name != group {
			continue
		}
		if i >= 0 && i < len(g.rules) {
			return &g.rules[i]
		}
		return nil
	}
	return nil
}

// mappingEntry returns the key and value nodes of key in mapping m.
func mappingEntry(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}
