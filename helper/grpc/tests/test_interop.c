// SPDX-License-Identifier: GPL-2.0
#include "t.h"
static const struct test tests[] = { { NULL, NULL } };
const struct suite interop_suite = { "interop", tests, NULL, NULL };
