using System.Numerics;

namespace Chainwalk.Engine;

/// <summary>Bob Jenkins' lookup3 as the kernel's include/linux/jhash.h has it (jhash_3words), used by NFQUEUE's balancing and HMARK.</summary>
public static class Jhash
{
    private const uint InitVal = 0xdeadbeef;

    /// <summary>jhash_3words(a, b, c, initval).</summary>
    public static uint ThreeWords(uint a, uint b, uint c, uint initval)
    {
        uint iv = unchecked(initval + InitVal + (3 << 2));
        unchecked
        {
            a += iv;
            b += iv;
            c += iv;
            c ^= b; c -= BitOperations.RotateLeft(b, 14);
            a ^= c; a -= BitOperations.RotateLeft(c, 11);
            b ^= a; b -= BitOperations.RotateLeft(a, 25);
            c ^= b; c -= BitOperations.RotateLeft(b, 16);
            a ^= c; a -= BitOperations.RotateLeft(c, 4);
            b ^= a; b -= BitOperations.RotateLeft(a, 14);
            c ^= b; c -= BitOperations.RotateLeft(b, 24);
        }
        return c;
    }

    /// <summary>reciprocal_scale(val, n): maps a 32-bit hash onto 0..n-1.</summary>
    public static uint Scale(uint value, uint n) => (uint)(((ulong)value * n) >> 32);
}
