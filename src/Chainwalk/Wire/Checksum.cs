using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Chainwalk.Wire;

/// <summary>The Internet checksum (RFC 1071) and the TCP/UDP/ICMPv6 pseudo-header sums.</summary>
public static class Checksum
{
    /// <summary>Adds the 16-bit big-endian words of <paramref name="data"/> to <paramref name="sum"/> (odd length padded with zero).</summary>
    /// <remarks>
    /// The result is the plain integer sum of the words (plus <paramref name="sum"/>), exactly as a word-by-word loop
    /// gives it, so callers that fold it their own way see the same value. Eight bytes are read at a time: the four
    /// words are added in two 32-bit lanes of two accumulators (a lane holds 65,537 words' worth before it could carry;
    /// a packet is at most 65,535 bytes), and the lanes are added at the end.
    /// </remarks>
    public static uint Add(uint sum, ReadOnlySpan<byte> data)
    {
        // A segment with data: summed with vectors (AddLong); a header (20-60 bytes) takes the loop below at once.
        if (data.Length >= VectorFrom && data.Length <= VectorUpTo && Avx2.IsSupported) return AddLong(sum, data);
        const ulong LowWords = 0x0000_FFFF_0000_FFFFUL;
        ulong even = 0, odd = 0;
        int i = 0;
        ref byte start = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(data);
        for (; i + 8 <= data.Length; i += 8)
        {
            ulong x = BinaryPrimitives.ReverseEndianness(System.Runtime.CompilerServices.Unsafe.ReadUnaligned<ulong>(ref System.Runtime.CompilerServices.Unsafe.Add(ref start, i)));
            even += x & LowWords;
            odd += (x >> 16) & LowWords;
        }
        ulong total = (even & 0xFFFF_FFFFUL) + (even >> 32) + (odd & 0xFFFF_FFFFUL) + (odd >> 32) + sum;
        if (i + 4 <= data.Length)
        {
            uint w = BinaryPrimitives.ReadUInt32BigEndian(data[i..]);
            total += (w >> 16) + (w & 0xFFFF);
            i += 4;
        }
        for (; i + 1 < data.Length; i += 2) total += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) total += (uint)(data[i] << 8);
        return (uint)total;
    }

    /// <summary>Lengths from which <see cref="Add"/> sums with vectors (shorter ones: a header, the scalar loop is as fast).</summary>
    private const int VectorFrom = 128;

    /// <summary>
    /// Lengths up to which the vector lanes cannot carry out of 32 bits: a lane adds at most two words (131,070) per 64
    /// bytes in each of its two accumulators, 2^32 / 131,070 * 64 bytes ≈ 2 MB; an IP packet is at most 65,535 bytes.
    /// </summary>
    private const int VectorUpTo = 1 << 20;

    /// <summary>
    /// <see cref="Add"/> of a long span: its first multiple of 64 bytes with vectors (<see cref="AddVector"/>), the rest
    /// (under 64 bytes, no carry out of 32 bits) with the loop; the same integer sum, truncated the same way.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static uint AddLong(uint sum, ReadOnlySpan<byte> data)
    {
        int head = data.Length & ~63;
        ulong total = AddVector(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(data), head) + sum + Add(0, data[head..]);
        return (uint)total;
    }

    /// <summary>
    /// The integer sum of the big-endian 16-bit words of the first <paramref name="length"/> bytes (a multiple of 64) at
    /// <paramref name="start"/>: each 32-byte vector's bytes swapped within their words (vpshufb), its eight 32-bit lanes'
    /// two words added to 32-bit accumulators, the lanes added at the end as 64-bit integers.
    /// </summary>
    private static ulong AddVector(ref byte start, int length)
    {
        var swap = Vector256.Create(
            (byte)1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
        var low = Vector256.Create(0xFFFFu);
        Vector256<uint> a = default, b = default;
        for (int i = 0; i < length; i += 64)
        {
            var x = Avx2.Shuffle(Vector256.LoadUnsafe(ref start, (nuint)i), swap).AsUInt32();
            var y = Avx2.Shuffle(Vector256.LoadUnsafe(ref start, (nuint)(i + 32)), swap).AsUInt32();
            a += (x & low) + (x >> 16);
            b += (y & low) + (y >> 16);
        }
        ulong total = 0;
        for (int k = 0; k < Vector256<uint>.Count; k++) total += (ulong)a.GetElement(k) + b.GetElement(k);
        return total;
    }

    /// <summary>Folds a 32-bit sum into 16 bits and complements it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static ushort Finish(uint sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Add(0, data));

    /// <summary>
    /// Whether the 20-byte IPv4 header at the start of <paramref name="b"/> sums to all ones (<c>Compute(b[..20]) == 0</c>):
    /// its five 32-bit words added in the machine's byte order and folded (RFC 1071 2(B): the sum's bytes are swapped
    /// with the words', and all ones is its own swap).
    /// </summary>
    public static bool HeaderValid20(ReadOnlySpan<byte> b)
    {
        ref byte r = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(b[..20]);
        ulong sum = (ulong)System.Runtime.CompilerServices.Unsafe.ReadUnaligned<uint>(ref r)
            + System.Runtime.CompilerServices.Unsafe.ReadUnaligned<uint>(ref System.Runtime.CompilerServices.Unsafe.Add(ref r, 4))
            + System.Runtime.CompilerServices.Unsafe.ReadUnaligned<uint>(ref System.Runtime.CompilerServices.Unsafe.Add(ref r, 8))
            + System.Runtime.CompilerServices.Unsafe.ReadUnaligned<uint>(ref System.Runtime.CompilerServices.Unsafe.Add(ref r, 12))
            + System.Runtime.CompilerServices.Unsafe.ReadUnaligned<uint>(ref System.Runtime.CompilerServices.Unsafe.Add(ref r, 16));
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        uint s = (uint)sum;
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return s == 0xFFFF;
    }

    /// <summary>The pseudo-header sum for IPv4: source, destination, protocol, layer-4 length.</summary>
    public static uint PseudoV4(ReadOnlySpan<byte> src, ReadOnlySpan<byte> dst, byte protocol, int length)
    {
        if (src.Length == 4 && dst.Length == 4)
        {
            // The two addresses' words directly (the same sum as Add's).
            uint a = BinaryPrimitives.ReadUInt32BigEndian(src), b = BinaryPrimitives.ReadUInt32BigEndian(dst);
            return (a >> 16) + (a & 0xFFFF) + (b >> 16) + (b & 0xFFFF) + protocol + (uint)length;
        }
        uint sum = Add(0, src);
        sum = Add(sum, dst);
        return sum + protocol + (uint)length;
    }

    /// <summary>The pseudo-header sum for IPv6 (RFC 8200 section 8.1).</summary>
    public static uint PseudoV6(ReadOnlySpan<byte> src, ReadOnlySpan<byte> dst, byte nextHeader, int length)
    {
        uint sum = Add(0, src);
        sum = Add(sum, dst);
        return sum + (uint)(length >> 16) + (uint)(length & 0xffff) + nextHeader;
    }
}
