package localcloud

import (
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
)

// InstallRules reads the event patterns of the install function's
// EventBridge triggers from the deployment file s.yaml at the module root
// (resources.install.props.triggers[].triggerConfig.eventRuleFilterPattern
// of every trigger of type eventbridge on the default bus, eventSourceType
// Default), so the local bus filters events
// exactly as the deployed rules will: a pattern that misses an event fails
// here, not in the cloud.
func InstallRules(moduleRoot string) ([]*ebsim.Pattern, error) {
	path := filepath.Join(moduleRoot, "s.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the install rules: %w", err)
	}
	return ParseInstallRules(b)
}

// ParseInstallRules is InstallRules for the bytes of an s.yaml.
func ParseInstallRules(sYAML []byte) ([]*ebsim.Pattern, error) {
	var doc struct {
		Resources map[string]struct {
			Props struct {
				Triggers []struct {
					TriggerName   string `yaml:"triggerName"`
					TriggerType   string `yaml:"triggerType"`
					TriggerConfig struct {
						Pattern     string `yaml:"eventRuleFilterPattern"`
						EventSource struct {
							Type string `yaml:"eventSourceType"`
						} `yaml:"eventSourceConfig"`
					} `yaml:"triggerConfig"`
				} `yaml:"triggers"`
			} `yaml:"props"`
		} `yaml:"resources"`
	}
	if err := yaml.Unmarshal(sYAML, &doc); err != nil {
		return nil, fmt.Errorf("parse s.yaml: %w", err)
	}
	install, ok := doc.Resources["install"]
	if !ok {
		return nil, fmt.Errorf("s.yaml has no resources.install")
	}
	var rules []*ebsim.Pattern
	for _, tr := range install.Props.Triggers {
		if tr.TriggerType != "eventbridge" || tr.TriggerConfig.EventSource.Type != "Default" {
			continue // the install queue's stream is no rule of the default bus
		}
		p, err := ebsim.CompilePattern(tr.TriggerConfig.Pattern)
		if err != nil {
			return nil, fmt.Errorf("s.yaml trigger %s: %w", tr.TriggerName, err)
		}
		rules = append(rules, p)
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("s.yaml: the install function has no eventbridge trigger")
	}
	return rules, nil
}
