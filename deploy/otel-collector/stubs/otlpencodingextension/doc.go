// Package otlpencodingextension is an empty stand-in: see builder-config.yaml.
package otlpencodingextension
