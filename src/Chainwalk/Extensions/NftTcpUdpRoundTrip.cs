using Chainwalk.Extensions.Matches;
using Chainwalk.Rules;

namespace Chainwalk.Extensions;

/// <summary>
/// What iptables-nft 1.8.9 does to tcp and udp matches on their way through nf_tables (add_nft_tcp/udp
/// in nft.c, then nft_parse_* in nft-shared.c when reading the rule back). A match with ports or flags
/// becomes payload compares; reading them back rebuilds one tcp (one udp) match at the place of the
/// first, into which every later native tcp (udp) match of the rule is folded, compare by compare:
/// "! 0:N" reads back as "N+1:65535", "! 0:65535" vanishes, inversions add up, later ports overwrite.
/// Matches that stay xt matches (no option, or --tcp-option) are left alone.
/// </summary>
public static class NftTcpUdpRoundTrip
{
    private enum Op
    {
        Eq,
        Neq,
        Lte,
        Gt,
    }

    /// <summary>Rewrites the rule's tcp/udp matches as iptables-nft reads them back.</summary>
    public static void Apply(Rule rule)
    {
        if (ReadsBackUnchanged(rule)) return;
        TcpData? tcp = null;
        UdpData? udp = null;
        for (int i = 0; i < rule.Matches.Count; i++)
        {
            MatchUse m = rule.Matches[i];
            if (m.Data is TcpData { Native: true } t)
            {
                if (tcp is null)
                {
                    tcp = new TcpData { Native = true, Revision = t.Revision, Given = t.Given };
                    rule.Matches[i] = new MatchUse(m.Extension, tcp);
                }
                else
                {
                    rule.Matches.RemoveAt(i--);
                }
                Fold(t, tcp);
            }
            else if (m.Data is UdpData { Native: true } u)
            {
                if (udp is null)
                {
                    udp = new UdpData { Native = true, Revision = u.Revision, Given = u.Given };
                    rule.Matches[i] = new MatchUse(m.Extension, udp);
                }
                else
                {
                    rule.Matches.RemoveAt(i--);
                }
                FoldPorts(u.SportMin, u.SportMax, u.InvSport, u.DportMin, u.DportMax, u.InvDport,
                    ref udp.SportMin, ref udp.SportMax, ref udp.InvSport, ref udp.DportMin, ref udp.DportMax, ref udp.InvDport);
            }
        }
    }

    /// <summary>
    /// True when the rewrite would give back the same matches: at most one native tcp and one native udp match, none
    /// inverted, no flag compare without a mask. Folding such a match alone into a fresh one copies its ports (a
    /// single port, 0:N and any other range each read back as they were) and flags: the rule keeps its objects
    /// (a restore of 100k rules then makes no second tcp data and match use per rule).
    /// </summary>
    private static bool ReadsBackUnchanged(Rule rule)
    {
        MatchList matches = rule.Matches;
        int tcp = 0, udp = 0;
        for (int i = 0; i < matches.Count; i++)
        {
            switch (matches[i].Data)
            {
                case TcpData { Native: true } t:
                    if (++tcp > 1 || t.InvSport || t.InvDport || t.InvFlags || t.InvOption || t.Option != 0 || (t.FlagMask == 0 && t.FlagCompare != 0)) return false;
                    break;
                case UdpData { Native: true } u:
                    if (++udp > 1 || u.InvSport || u.InvDport) return false;
                    break;
            }
        }
        return true;
    }

    private static void Fold(TcpData t, TcpData acc)
    {
        if (t.FlagMask != 0)
        {
            acc.FlagMask = t.FlagMask;
            acc.FlagCompare = t.FlagCompare;
            if (t.InvFlags) acc.InvFlags = true;
        }
        FoldPorts(t.SportMin, t.SportMax, t.InvSport, t.DportMin, t.DportMax, t.InvDport,
            ref acc.SportMin, ref acc.SportMax, ref acc.InvSport, ref acc.DportMin, ref acc.DportMax, ref acc.InvDport);
    }

    /// <summary>add_nft_tcpudp's compares, applied to the read-back ports.</summary>
    private static void FoldPorts(ushort s0, ushort s1, bool invS, ushort d0, ushort d1, bool invD,
        ref ushort sMin, ref ushort sMax, ref bool sInv, ref ushort dMin, ref ushort dMax, ref bool dInv)
    {
        if (s0 != 0 && s0 == s1 && d0 != 0 && d0 == d1 && invS == invD)
        {
            // One 32-bit compare of both ports.
            Op op = invS ? Op.Neq : Op.Eq;
            Single(op, s0, ref sMin, ref sMax, ref sInv);
            Single(op, d0, ref dMin, ref dMax, ref dInv);
            return;
        }
        if (s0 != 0 || s1 < ushort.MaxValue) Compare(s0, s1, invS, ref sMin, ref sMax, ref sInv);
        if (d0 != 0 || d1 < ushort.MaxValue) Compare(d0, d1, invD, ref dMin, ref dMax, ref dInv);
    }

    /// <summary>expr_gen_range_cmp16 and how nft_parse_* turn each form back into a range.</summary>
    private static void Compare(ushort lo, ushort hi, bool invert, ref ushort min, ref ushort max, ref bool inv)
    {
        if (lo == hi)
        {
            Single(invert ? Op.Neq : Op.Eq, lo, ref min, ref max, ref inv);
        }
        else if (lo == 0 && hi < ushort.MaxValue)
        {
            Single(invert ? Op.Gt : Op.Lte, hi, ref min, ref max, ref inv);
        }
        else
        {
            if (invert) inv = true;
            min = lo;
            max = hi;
        }
    }

    private static void Single(Op op, ushort port, ref ushort min, ref ushort max, ref bool inv)
    {
        switch (op)
        {
            case Op.Neq:
                inv = true;
                min = max = port;
                break;
            case Op.Eq:
                min = max = port;
                break;
            case Op.Lte:
                max = port;
                break;
            default:
                min = port == ushort.MaxValue ? port : (ushort)(port + 1);
                break;
        }
    }
}
