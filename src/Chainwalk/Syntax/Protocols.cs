using Chainwalk.Net;

namespace Chainwalk.Syntax;

/// <summary>Protocol names as iptables parses and prints them (xtables_parse_protocol, proto_to_name).</summary>
public static class Protocols
{
    public const int Icmp = 1;
    public const int Tcp = 6;
    public const int Udp = 17;
    public const int Icmpv6 = 58;
    public const int Sctp = 132;
    public const int Dccp = 33;
    public const int UdpLite = 136;
    public const int Esp = 50;
    public const int Ah = 51;
    public const int Mh = 135;

    /// <summary>libxtables' own protocol table (xtables_chain_protos), consulted before /etc/protocols when printing.</summary>
    private static readonly (string Name, int Number)[] ChainProtos =
    [
        ("tcp", Tcp),
        ("sctp", Sctp),
        ("udp", Udp),
        ("udplite", UdpLite),
        ("icmp", Icmp),
        ("ipv6-icmp", Icmpv6),
        ("icmpv6", Icmpv6),
        ("esp", Esp),
        ("ah", Ah),
        ("mobility-header", Mh),
        ("ipv6-mh", Mh),
        ("mh", Mh),
        ("all", 0),
    ];

    /// <summary>xtables_parse_protocol: a number 0-255, "all", a name from /etc/protocols or the built-in table.</summary>
    public static ushort Parse(string text, NameDb names)
    {
        if (NumberParsing.TryParseCUnsigned(text, 255, out ulong n)) return (ushort)n;
        if (text == "all") return 0;
        if (names.TryGetProtocolNumber(text, out int p)) return (ushort)p;
        foreach (var (name, number) in ChainProtos)
        {
            if (name == text) return (ushort)number;
        }
        throw XtablesException.Param($"unknown protocol \"{text}\" specified");
    }

    /// <summary>proto_to_name: the built-in table first, then /etc/protocols unless <paramref name="noLookup"/>.</summary>
    public static string? Name(int number, NameDb names, bool noLookup = false)
    {
        foreach (var (name, num) in ChainProtos)
        {
            if (num == number) return name;
        }
        if (number != 0 && !noLookup) return names.ProtocolName(number);
        return null;
    }

    /// <summary>The match a protocol implicitly loads (find_proto): tcp, udp, icmp, icmp6 …</summary>
    public static string? ImplicitMatchName(string protocolText, NameDb names)
    {
        string? name = NumberParsing.TryParseCUnsigned(protocolText, 255, out ulong n) ? Name((int)n, names) : protocolText;
        if (name is "icmpv6" or "ipv6-icmp") name = "icmp6";
        return name;
    }
}
