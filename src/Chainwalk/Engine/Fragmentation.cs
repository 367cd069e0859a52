using System.Buffers.Binary;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>IPv4 fragmentation on output (ip_do_fragment's slow path in net/ipv4/ip_output.c).</summary>
public static class Fragmentation
{
    /// <summary>
    /// Splits an IPv4 packet into fragments of at most <paramref name="mtu"/> bytes: data in multiples of 8
    /// bytes (except the last), the ID kept, MF on all but the last (and on the last when the packet was itself
    /// a non-last fragment), options: all in the first fragment, later fragments keep only the options whose
    /// "copied" bit is set (ip_options_fragment overwrites the others with NOP).
    /// </summary>
    public static List<byte[]> FragmentV4(byte[] packet, int mtu)
    {
        int hlen = (packet[0] & 0x0f) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2));
        ushort fragField = BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(6));
        int baseOffset = (fragField & 0x1fff) * 8;
        bool baseMore = (fragField & 0x2000) != 0;
        var list = new List<byte[]>();
        byte[] header = packet[..hlen];
        byte[] laterHeader = (byte[])header.Clone();
        StripUncopiedOptions(laterHeader);
        int dataLength = total - hlen;
        int offset = 0;
        bool first = true;
        while (offset < dataLength)
        {
            int room = (mtu - hlen) & ~7;
            if (room <= 0) room = 8;
            int len = Math.Min(room, dataLength - offset);
            bool more = offset + len < dataLength || baseMore;
            byte[] h = first ? header : laterHeader;
            byte[] f = new byte[hlen + len];
            h.CopyTo(f, 0);
            packet.AsSpan(hlen + offset, len).CopyTo(f.AsSpan(hlen));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(2), (ushort)f.Length);
            int off = (baseOffset + offset) / 8;
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(6), (ushort)((fragField & 0x4000) | (more ? 0x2000 : 0) | off));
            if (Ipv4Header.TryCreate(f, out Ipv4Header ip)) ip.UpdateChecksum();
            list.Add(f);
            offset += len;
            first = false;
        }
        return list;
    }

    private static void StripUncopiedOptions(byte[] h)
    {
        int i = 20;
        while (i < h.Length)
        {
            byte type = h[i];
            if (type == 0) break;
            if (type == 1)
            {
                i++;
                continue;
            }
            if (i + 1 >= h.Length) break;
            int len = h[i + 1];
            if (len < 2 || i + len > h.Length) break;
            if ((type & 0x80) == 0) h.AsSpan(i, len).Fill(1);
            i += len;
        }
    }
}
