using System.Buffers.Binary;

namespace Chainwalk.Wire;

/// <summary>The Internet checksum (RFC 1071) and the TCP/UDP/ICMPv6 pseudo-header sums.</summary>
public static class Checksum
{
    /// <summary>Adds the 16-bit big-endian words of <paramref name="data"/> to <paramref name="sum"/> (odd length padded with zero).</summary>
    public static uint Add(uint sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) sum += (uint)(data[i] << 8);
        return sum;
    }

    /// <summary>Folds a 32-bit sum into 16 bits and complements it.</summary>
    public static ushort Finish(uint sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Add(0, data));

    /// <summary>The pseudo-header sum for IPv4: source, destination, protocol, layer-4 length.</summary>
    public static uint PseudoV4(ReadOnlySpan<byte> src, ReadOnlySpan<byte> dst, byte protocol, int length)
    {
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
