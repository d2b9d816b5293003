package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// loadTLS reads the certificate of the not_tars adapters whose endpoint is ssl (HTTPS and
// wss://) from the PEM files tls-cert and tls-key, relative to the working directory as datapath
// is; nil if neither is set and no adapter needs them. Errors name the setting.
func loadTLS(s Settings, cfg *tars.Config, log *slog.Logger) (*tls.Config, error) {
	ssl := "" // the first adapter that needs them
	isSSL := func(a tars.AdapterConfig) bool { return a.Protocol == "not_tars" && a.Endpoint.Proto == "ssl" }
	if i := slices.IndexFunc(cfg.Adapters, isSSL); i >= 0 {
		ssl = cfg.Adapters[i].Name
	}
	key := func(k string) string { return websocketPath + "<" + k + ">" }
	switch {
	case s.TLSCert == "" && s.TLSKey == "" && ssl == "":
		return nil, nil
	case s.TLSCert == "" && s.TLSKey == "":
		return nil, fmt.Errorf("config %s and %s: required by adapter %s, whose endpoint is ssl", key("tls-cert"), key("tls-key"), ssl)
	case s.TLSCert == "":
		return nil, fmt.Errorf("config %s: required with %s", key("tls-cert"), key("tls-key"))
	case s.TLSKey == "":
		return nil, fmt.Errorf("config %s: required with %s", key("tls-key"), key("tls-cert"))
	}
	certPEM, err := os.ReadFile(s.TLSCert)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", key("tls-cert"), err)
	}
	keyPEM, err := os.ReadFile(s.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", key("tls-key"), err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("config %s (%s) and %s (%s): %w", key("tls-cert"), s.TLSCert, key("tls-key"), s.TLSKey, err)
	}
	// An expired certificate only warns: browsers refuse it, but not starting would take all down.
	if pair.Leaf != nil && time.Now().After(pair.Leaf.NotAfter) {
		log.Warn("tls-cert has expired: browsers will refuse it", "file", s.TLSCert, "expired", pair.Leaf.NotAfter)
	}
	if ssl == "" {
		log.Warn("tls-cert is set but no not_tars adapter has an ssl endpoint to serve it")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}}, nil
}

// httpScheme is the scheme of the first not_tars adapter, the one the start banner names.
func httpScheme(cfg *tars.Config) string {
	i := slices.IndexFunc(cfg.Adapters, func(a tars.AdapterConfig) bool { return a.Protocol == "not_tars" })
	if i >= 0 && cfg.Adapters[i].Endpoint.Proto == "ssl" {
		return "https"
	}
	return "http"
}
