/*
 * ProcessPrng for Wine 8, whose bcryptprimitives.dll is missing: Rust's standard library on
 * Windows (1.78 and later) imports it for random numbers. Built with mingw-w64 beside the
 * agent's .exe when it runs under Wine in the tests; Windows itself has the real DLL.
 */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
