using System.Buffers.Binary;
using System.Globalization;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// The in-place header edits the mangle targets share: the IPv4 TOS byte / IPv6 traffic class (the kernel's
/// ipv4_change_dsfield / ipv6_change_dsfield), the TTL / hop limit, and 16-bit words of the TCP header with
/// the checksum adjusted incrementally (inet_proto_csum_replace2), so a wrong checksum stays wrong.
/// </summary>
internal static class TargetEdits
{
    /// <summary>The DS field: the IPv4 TOS byte or the IPv6 traffic class.</summary>
    public static byte DsField(Packet p) => p.Family == IpFamily.V4
        ? p.Bytes[1]
        : (byte)(((p.Bytes[0] & 0x0f) << 4) | (p.Bytes[1] >> 4));

    /// <summary>Writes the DS field; IPv4's header checksum is adjusted (csum_replace2 on the TOS word).</summary>
    public static void SetDsField(Packet p, byte value)
    {
        byte[] b = p.Bytes;
        if (p.Family == IpFamily.V4)
        {
            ushort oldWord = BinaryPrimitives.ReadUInt16BigEndian(b);
            b[1] = value;
            ushort newWord = BinaryPrimitives.ReadUInt16BigEndian(b);
            ReplaceIpv4Check(b, oldWord, newWord);
        }
        else
        {
            b[0] = (byte)((b[0] & 0xf0) | (value >> 4));
            b[1] = (byte)((b[1] & 0x0f) | (value << 4));
        }
    }

    public static void ReplaceIpv4Check(byte[] b, ushort oldWord, ushort newWord)
    {
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(10));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), TransportChecksum.Replace16(check, oldWord, newWord));
    }

    /// <summary>The upper-layer header's offset: after the IPv4 header, or after IPv6's extension headers (-1 for a later IPv6 fragment or a cut header).</summary>
    public static int TransportOffset(Packet p, out byte protocol)
    {
        if (p.Family == IpFamily.V4)
        {
            protocol = p.Protocol;
            return p.IpHeaderLength;
        }
        (int off, byte proto, bool later) = IcmpErrors.Ipv6Upper(p.Bytes.AsSpan(0, Math.Min(p.TotalLength, p.Bytes.Length)));
        protocol = proto;
        return later ? -1 : off;
    }

    /// <summary>Replaces the 16-bit word at <paramref name="at"/> of the TCP header at <paramref name="tcp"/> and adjusts the TCP checksum.</summary>
    public static void ReplaceTcpWord(byte[] b, int tcp, int at, ushort newWord)
    {
        ushort oldWord = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(tcp + at));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(tcp + at), newWord);
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(tcp + 16));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(tcp + 16), TransportChecksum.Replace16(check, oldWord, newWord));
    }

    public static string Hex(uint v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    public static string Dec(long v) => v.ToString(CultureInfo.InvariantCulture);
}
