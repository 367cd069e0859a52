namespace Chainwalk.Wire;

/// <summary>
/// Checksums of TCP, UDP and ICMPv6 over the IPv4 or IPv6 pseudo header (chosen by the address length, 4 or 16),
/// and the incremental update of RFC 1624 that NAT uses when it rewrites an address or a port.
/// </summary>
public static class TransportChecksum
{
    /// <summary>The checksum to store in <paramref name="segment"/>, whose checksum field must be zero.</summary>
    public static ushort Compute(ReadOnlySpan<byte> segment, ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol) =>
        Checksum.Finish(Sum(segment, source, destination, protocol));

    /// <summary>True when the checksum stored in <paramref name="segment"/> is right.</summary>
    public static bool Verify(ReadOnlySpan<byte> segment, ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol) =>
        Checksum.Finish(Sum(segment, source, destination, protocol)) == 0;

    private static uint Sum(ReadOnlySpan<byte> segment, ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol)
    {
        uint sum = source.Length == 4
            ? Checksum.PseudoV4(source, destination, protocol, segment.Length)
            : Checksum.PseudoV6(source, destination, protocol, segment.Length);
        return Checksum.Add(sum, segment);
    }

    /// <summary>The checksum after a 16-bit word of the covered data changed from <paramref name="oldValue"/> to <paramref name="newValue"/> (RFC 1624 eqn. 3).</summary>
    public static ushort Replace16(ushort checksum, ushort oldValue, ushort newValue)
    {
        uint sum = (uint)(ushort)~checksum + (ushort)~oldValue + newValue;
        return Checksum.Finish(sum);
    }

    /// <summary>The checksum after a 32-bit word (an IPv4 address) changed.</summary>
    public static ushort Replace32(ushort checksum, uint oldValue, uint newValue)
    {
        uint sum = (uint)(ushort)~checksum
            + (ushort)~(oldValue >> 16) + (ushort)~oldValue
            + (newValue >> 16) + (newValue & 0xffff);
        return Checksum.Finish(sum);
    }

    /// <summary>The checksum after a 128-bit word (an IPv6 address) changed.</summary>
    public static ushort Replace128(ushort checksum, UInt128 oldValue, UInt128 newValue)
    {
        uint sum = (ushort)~checksum;
        for (int shift = 0; shift < 128; shift += 16)
        {
            sum += (ushort)~(ushort)(oldValue >> shift);
            sum += (ushort)(newValue >> shift);
        }
        return Checksum.Finish(sum);
    }
}
