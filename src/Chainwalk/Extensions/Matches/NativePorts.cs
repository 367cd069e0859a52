using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>
/// The port compares iptables-nft 1.8.9 emits for <c>-m tcp</c>/<c>-m udp</c> (iptables/nft.c add_nft_tcpudp),
/// evaluated as nf_tables does: a payload load at the transport header that fails (too short) ends the rule
/// without a match, whatever the inversion. The load does not look at the fragment offset: a later
/// fragment's first bytes are read as ports (recorded on Linux 6.18).
/// </summary>
internal static class NativePorts
{
    public static bool Match(Packet p, ushort smin, ushort smax, bool sinv, ushort dmin, ushort dmax, bool dinv)
    {
        // Both ports single, non-zero and inverted alike: one 4-byte compare of the pair. Inverted, it is
        // "not (sport == S and dport == D)", which is not what xt_tcpudp's two inverted compares mean
        // (sport != S and dport != D): the 1.8.9 translation's own semantics, kept here (recorded on Linux 6.18:
        // "! --sport 1234 ! --dport 23" counts a 1234 -> 22 SYN).
        if (smin != 0 && smin == smax && dmin != 0 && dmin == dmax && sinv == dinv)
        {
            if (!HeaderReads.TryTransport(p, 4, out ReadOnlySpan<byte> pair)) return false;
            bool same = HeaderReads.U16(pair, 0) == smin && HeaderReads.U16(pair, 2) == dmin;
            return same != sinv;
        }
        // 1.8.9 emits nothing for a full range, even inverted ("! --sport 0:65535" matches every packet).
        if (smin != 0 || smax != ushort.MaxValue)
        {
            if (!HeaderReads.TryTransport(p, 2, out ReadOnlySpan<byte> s)) return false;
            ushort v = HeaderReads.U16(s, 0);
            if ((v >= smin && v <= smax) == sinv) return false;
        }
        if (dmin != 0 || dmax != ushort.MaxValue)
        {
            if (!HeaderReads.TryTransport(p, 4, out ReadOnlySpan<byte> dp)) return false;
            ushort v = HeaderReads.U16(dp, 2);
            if ((v >= dmin && v <= dmax) == dinv) return false;
        }
        return true;
    }
}
