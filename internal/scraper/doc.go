// Package scraper reads model servers' metric pages into a TSDB appender
// the way Prometheus's scrape loop does (target health, staleness markers,
// the up series, classic histograms as native ones with custom buckets),
// but keeps only the metric families it is told to, and drops the rest of
// a page's lines before they are parsed.
//
// A model server's page has hundreds to thousands of lines and the
// engine profiles read a few dozen of them. Prometheus's scrape manager
// parses every line, and builds the labels of each when it converts
// classic histograms, before its metric relabelling drops what is not
// needed; it also keeps per target the metadata of every family and an
// entry for every dropped series. Skipping the unneeded lines as bytes
// avoids that work and that memory. The lines kept are then read from
// their bytes where they were seen the scrape before: their labels are
// built once, also for a classic histogram's lines (native.go), and a
// page whose series were all on the scrape before is read without the
// parser, by splitting each line (seen.go).
//
// Each target keeps its own clock, as in Prometheus, but its scrapes run
// on a few shared workers (workers.go), whose grown stacks serve scrape
// after scrape.
package scraper
