// Package encoding is an empty stand-in: see builder-config.yaml.
package encoding
