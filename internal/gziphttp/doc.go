// Package gziphttp decides whether an HTTP answer may be gzipped, from the
// request's Accept-Encoding, for the handlers that compress their answers
// themselves, and writes gzip answers whose unchanging parts are
// compressed once for every request.
package gziphttp
