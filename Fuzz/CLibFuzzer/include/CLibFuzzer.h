#ifndef MESHGATE_CLIBFUZZER_H
#define MESHGATE_CLIBFUZZER_H
// libFuzzer's driver, linked by -sanitize=fuzzer. SwiftPM links every executable with its entry point
// named `<Module>_main`; each fuzz target defines that name and hands over to this driver.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
