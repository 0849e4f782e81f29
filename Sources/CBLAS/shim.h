#include <cblas.h>
// OpenBLAS extension: pin the thread count from Swift (PLATFORM.md: 1 thread is best here).
void openblas_set_num_threads(int num_threads);
