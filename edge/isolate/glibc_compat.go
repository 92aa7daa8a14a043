//go:build linux && cgo

package isolate

// The libv8 shipped by github.com/tommie/v8go was built against glibc 2.38,
// whose headers redirect strtol & co. and sscanf/fscanf to their C23
// variants. Debian 12 has glibc 2.36, without those symbols, so the link
// fails. These wrappers provide them over the classic functions (the C23
// variants differ only in also accepting 0b binary literals). On glibc 2.38+
// the program's own definitions simply take precedence.

/*
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
long long __isoc23_strtoll(const char *s, char **end, int base) { return strtoll(s, end, base); }
unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }
unsigned long long __isoc23_strtoull(const char *s, char **end, int base) { return strtoull(s, end, base); }
int __isoc23_sscanf(const char *s, const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	int n = vsscanf(s, format, ap);
	va_end(ap);
	return n;
}
int __isoc23_fscanf(FILE *f, const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	int n = vfscanf(f, format, ap);
	va_end(ap);
	return n;
}
*/
import "C"
