/*
 * eleos/attrs.h — the attributes the library's interfaces use, in one place.
 */
#ifndef ELEOS_ATTRS_H
#define ELEOS_ATTRS_H

/* A result that must be checked: ignoring it is a compile-time warning (-Werror in CI). */
#define ELEOS_MUST_CHECK __attribute__((warn_unused_result))

#endif
