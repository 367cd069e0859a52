using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>The NF_NAT_RANGE_* flags of a NAT range.</summary>
[Flags]
public enum NatRangeFlags : uint
{
    None = 0,
    MapIps = 1,
    ProtoSpecified = 2,
    ProtoRandom = 4,
    Persistent = 8,
    ProtoRandomFully = 16,
    ProtoOffset = 32,
}

/// <summary>
/// A NAT range (struct nf_nat_range2) as DNAT, SNAT, MASQUERADE and REDIRECT hold it: an address range
/// (host order, IPv4 in the low 32 bits), a port range and, for shifted port maps, a base port.
/// </summary>
/// <remarks>
/// A kube-proxy rule set has a DNAT rule per endpoint, so the object is kept small (40 bytes): a range whose two
/// addresses fit in 32 bits (every IPv4 range, and IPv6's <c>::</c>-prefixed ones: the value is the same either way) is
/// held in two 32-bit fields. A wider range needs the IPv6 form, <see cref="WideNatRangeData"/> (made by
/// <see cref="For"/> and by the NAT targets' <c>CreateData</c> for IPv6 rules); this one refuses it. The properties read
/// and write full 128-bit values as if they were fields.
/// </remarks>
public class NatRangeData : ExtensionData
{
    /// <summary>The data for a NAT range of <paramref name="family"/>: the IPv6 form holds 128-bit addresses.</summary>
    public static NatRangeData For(IpFamily family) => family == IpFamily.V6 ? new WideNatRangeData() : new NatRangeData();

    public NatRangeFlags Flags
    {
        get => (NatRangeFlags)_flags;
        set => _flags = checked((byte)value); // the NF_NAT_RANGE_* bits end at 32 (NatRangeFlags)
    }

    public UInt128 MinAddress
    {
        get => this is WideNatRangeData { IsWide: true } w ? w.WideMin : _min;
        set => SetAddresses(value, MaxAddress);
    }

    public UInt128 MaxAddress
    {
        get => this is WideNatRangeData { IsWide: true } w ? w.WideMax : _max;
        set => SetAddresses(MinAddress, value);
    }

    public ushort MinPort { get; set; }

    public ushort MaxPort { get; set; }

    /// <summary>The base port of a shifted port map (NF_NAT_RANGE_PROTO_OFFSET, nf_nat_range2.base_proto).</summary>
    public ushort BasePort { get; set; }

    public bool Has(NatRangeFlags f) => (Flags & f) != 0;

    private uint _min, _max;
    private byte _flags;

    /// <summary>Holds the addresses in the 32-bit fields when both fit; else the IPv6 form holds them and this one throws.</summary>
    private protected virtual void SetAddresses(UInt128 min, UInt128 max)
    {
        if (!SetNarrow(min, max))
            throw new InvalidOperationException("a NAT range wider than 32 bits needs the IPv6 form (NatRangeData.For(IpFamily.V6))");
    }

    /// <summary>Sets the 32-bit fields when both addresses fit (true), else leaves them (false).</summary>
    private protected bool SetNarrow(UInt128 min, UInt128 max)
    {
        if (min > uint.MaxValue || max > uint.MaxValue) return false;
        _min = (uint)min;
        _max = (uint)max;
        return true;
    }
}

/// <summary>
/// The NAT range of an IPv6 rule: 128-bit addresses in fields of their own when they do not both fit in 32 bits
/// (<see cref="NatRangeData"/> keeps the IPv4 form at 40 bytes).
/// </summary>
public sealed class WideNatRangeData : NatRangeData
{
    private UInt128 _wideMin, _wideMax;

    internal bool IsWide { get; private set; }

    internal UInt128 WideMin => _wideMin;

    internal UInt128 WideMax => _wideMax;

    private protected override void SetAddresses(UInt128 min, UInt128 max)
    {
        IsWide = !SetNarrow(min, max);
        (_wideMin, _wideMax) = IsWide ? (min, max) : (UInt128.Zero, UInt128.Zero);
    }
}

/// <summary>Parsing and printing shared by the NAT targets (libxt_NAT.c of iptables 1.8.9).</summary>
internal static class NatRange
{
    /// <summary>Protocols with ports for the NAT targets (1.8.9 also lets ICMP through).</summary>
    public static bool PortsAllowed(ushort proto) =>
        proto is Protocols.Tcp or Protocols.Udp or Protocols.Sctp or Protocols.Dccp or Protocols.Icmp;

    /// <summary>parse_ports: "port", "port-port" or "port-port/base".</summary>
    public static void ParsePorts(string arg, bool portOk, NatRangeData r, NameDb names)
    {
        if (!portOk) throw XtablesException.Param("Need TCP, UDP, SCTP or DCCP with port specification");
        r.Flags |= NatRangeFlags.ProtoSpecified;

        string rest;
        if (!TargetParsing.StrToUi(arg, 0, ushort.MaxValue, out ulong port, out int end))
        {
            int p = TargetParsing.ServiceToPort(arg, names);
            if (p < 0) throw XtablesException.Param($"Port `{arg}' not valid");
            port = (ulong)p;
            end = arg.Length;
        }
        if (end == arg.Length)
        {
            r.MinPort = r.MaxPort = (ushort)port;
            return;
        }
        switch (arg[end])
        {
            case '-':
                rest = arg[(end + 1)..];
                break;
            case ':':
                throw XtablesException.Param("Invalid port:port syntax - use dash");
            default:
                throw XtablesException.Param($"Garbage after port value: `{arg[end..]}'");
        }

        if (!TargetParsing.StrToUi(rest, 0, ushort.MaxValue, out ulong maxPort, out end))
            throw XtablesException.Param($"Port `{rest}' not valid");
        if (maxPort < port) throw XtablesException.Param($"Port range `{rest}' funky");
        r.MinPort = (ushort)port;
        r.MaxPort = (ushort)maxPort;
        if (end == rest.Length) return;
        if (rest[end] != '/') throw XtablesException.Param($"Garbage after port range: `{rest[end..]}'");

        string b = rest[(end + 1)..];
        // The base port is read with an end pointer that is never looked at: "1x" is 1.
        if (!TargetParsing.StrToUi(b, 1, ushort.MaxValue, out ulong basePort, out _))
        {
            int p = TargetParsing.ServiceToPort(b, names);
            if (p < 0) throw XtablesException.Param($"Port `{b}' not valid");
            basePort = (ulong)p;
        }
        r.Flags |= NatRangeFlags.ProtoOffset;
        r.BasePort = (ushort)basePort;
    }

    /// <summary>parse_to: "[addr[-addr]][:port[-port[/base]]]", IPv6 addresses in brackets when a port follows.</summary>
    public static void ParseTo(string arg, bool portOk, NatRangeData r, IpFamily family, NameDb names)
    {
        // Work on a copy with NUL-like cuts expressed as indexes: start..stop is the address part.
        int start;
        int stop = arg.Length;
        int colon;
        int open = arg.IndexOf('[', StringComparison.Ordinal);
        if (open < 0)
        {
            start = 0;
            colon = arg.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0 && arg.IndexOf(':', colon + 1) >= 0) colon = -1;
        }
        else
        {
            start = open + 1;
            int close = arg.IndexOf(']', start);
            if (close < 0 || family == IpFamily.V4) throw XtablesException.Param("Invalid address format");
            stop = close;
            colon = arg.IndexOf(':', close + 1);
        }

        if (colon >= 0)
        {
            ParsePorts(arg[(colon + 1)..], portOk, r, names);
            if (colon == 0 || colon == 2) return;
            if (colon < stop) stop = colon;
        }

        r.Flags |= NatRangeFlags.MapIps;
        string addrPart = arg[start..stop];
        int dash = addrPart.IndexOf('-', StringComparison.Ordinal);
        string first = dash >= 0 ? addrPart[..dash] : addrPart;
        if (!TargetParsing.TryInetPton(first, family, out UInt128 min)) throw XtablesException.Param($"Bad IP address \"{first}\"");
        UInt128 max = min;
        if (dash >= 0)
        {
            string second = addrPart[(dash + 1)..];
            if (!TargetParsing.TryInetPton(second, family, out max)) throw XtablesException.Param($"Bad IP address \"{second}\"");
        }
        r.MinAddress = min;
        r.MaxAddress = max;
    }

    /// <summary>sprint_range: the range text of save and list forms.</summary>
    public static string RangeText(NatRangeData r, IpFamily family)
    {
        var sb = new StringBuilder();
        bool brackets = family == IpFamily.V6 && r.Has(NatRangeFlags.ProtoSpecified);
        if (r.Has(NatRangeFlags.MapIps))
        {
            if (brackets) sb.Append('[');
            sb.Append(IpNet.FormatAddress(r.MinAddress, family));
            if (r.MinAddress != r.MaxAddress) sb.Append('-').Append(IpNet.FormatAddress(r.MaxAddress, family));
            if (brackets) sb.Append(']');
        }
        if (r.Has(NatRangeFlags.ProtoSpecified))
        {
            sb.Append(':').Append(TargetParsing.Dec(r.MinPort));
            if (r.MaxPort != r.MinPort) sb.Append('-').Append(TargetParsing.Dec(r.MaxPort));
            if (r.Has(NatRangeFlags.ProtoOffset)) sb.Append('/').Append(TargetParsing.Dec(r.BasePort));
        }
        return sb.ToString();
    }

    /// <summary>__NAT_print: " OPT RANGE" then the flag words.</summary>
    public static void Print(StringBuilder sb, NatRangeData r, IpFamily family, string rangeOpt, string flagPrefix, bool skipColon)
    {
        string range = RangeText(r, family);
        if (range.Length > 0)
        {
            if (range[0] == ':' && skipColon) range = range[1..];
            sb.Append(' ').Append(rangeOpt).Append(range);
        }
        if (r.Has(NatRangeFlags.ProtoRandom)) sb.Append(' ').Append(flagPrefix).Append("random");
        if (r.Has(NatRangeFlags.ProtoRandomFully)) sb.Append(' ').Append(flagPrefix).Append("random-fully");
        if (r.Has(NatRangeFlags.Persistent)) sb.Append(' ').Append(flagPrefix).Append("persistent");
    }
}
