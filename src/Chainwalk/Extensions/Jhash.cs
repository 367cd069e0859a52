using System.Numerics;

namespace Chainwalk.Extensions;

/// <summary>Bob Jenkins' lookup3 hash as the kernel's include/linux/jhash.h computes it (cluster, hashlimit).</summary>
public static class Jhash
{
    /// <summary>JHASH_INITVAL.</summary>
    public const uint InitVal = 0xdeadbeef;

    private static void Mix(ref uint a, ref uint b, ref uint c)
    {
        a -= c; a ^= BitOperations.RotateLeft(c, 4); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 6); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 8); b += a;
        a -= c; a ^= BitOperations.RotateLeft(c, 16); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 19); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 4); b += a;
    }

    private static void Final(ref uint a, ref uint b, ref uint c)
    {
        c ^= b; c -= BitOperations.RotateLeft(b, 14);
        a ^= c; a -= BitOperations.RotateLeft(c, 11);
        b ^= a; b -= BitOperations.RotateLeft(a, 25);
        c ^= b; c -= BitOperations.RotateLeft(b, 16);
        a ^= c; a -= BitOperations.RotateLeft(c, 4);
        b ^= a; b -= BitOperations.RotateLeft(a, 14);
        c ^= b; c -= BitOperations.RotateLeft(b, 24);
    }

    /// <summary>jhash_1word.</summary>
    public static uint OneWord(uint a, uint initval)
    {
        uint iv = initval + InitVal + (1 << 2);
        uint b = iv, c = iv;
        a += iv;
        Final(ref a, ref b, ref c);
        return c;
    }

    /// <summary>jhash_3words (NFQUEUE's balancing, HMARK): the same as <see cref="Words"/> of the three words.</summary>
    public static uint ThreeWords(uint a, uint b, uint c, uint initval)
    {
        uint iv = initval + InitVal + (3 << 2);
        a += iv;
        b += iv;
        c += iv;
        Final(ref a, ref b, ref c);
        return c;
    }

    /// <summary>jhash2: a hash of 32-bit words.</summary>
    public static uint Words(ReadOnlySpan<uint> k, uint initval)
    {
        int length = k.Length;
        uint a, b, c;
        a = b = c = InitVal + ((uint)length << 2) + initval;
        int i = 0;
        while (length > 3)
        {
            a += k[i]; b += k[i + 1]; c += k[i + 2];
            Mix(ref a, ref b, ref c);
            length -= 3;
            i += 3;
        }
        switch (length)
        {
            case 3: c += k[i + 2]; goto case 2;
            case 2: b += k[i + 1]; goto case 1;
            case 1:
                a += k[i];
                Final(ref a, ref b, ref c);
                break;
        }
        return c;
    }

    /// <summary>reciprocal_scale: maps a hash onto [0, range).</summary>
    public static uint Scale(uint value, uint range) => (uint)(((ulong)value * range) >> 32);
}
