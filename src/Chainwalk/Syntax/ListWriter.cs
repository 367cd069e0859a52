using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>Display flags of <c>iptables -L</c> (the FMT_* flags of xtables).</summary>
[Flags]
public enum ListFormat
{
    None = 0,
    Numeric = 1,
    NoCounts = 2,
    KiloMegaGiga = 4,
    Options = 8,
    NoTable = 16,
    NoTarget = 32,
    Via = 64,
    NoNewline = 128,
    LineNumbers = 256,
}

/// <summary>
/// The <c>iptables -L</c> table: chain headers, the fixed columns with their widths, and each
/// extension's list form (print_header / print_rule_details / print_ipv4_addresses of iptables 1.8.9).
/// </summary>
public sealed class ListWriter
{
    private readonly StringBuilder _sb;
    private readonly ListFormat _format;
    private readonly NameDb _names;

    public ListWriter(StringBuilder sb, ListFormat format, NameDb? names = null)
    {
        _sb = sb;
        _format = format;
        _names = names ?? NameDb.System;
    }

    public static ListFormat FormatFor(bool verbose, bool numeric, bool exact, bool lineNumbers)
    {
        ListFormat f = ListFormat.Options;
        f |= verbose ? ListFormat.Via : ListFormat.NoCounts;
        if (numeric) f |= ListFormat.Numeric;
        if (!exact) f |= ListFormat.KiloMegaGiga;
        if (lineNumbers) f |= ListFormat.LineNumbers;
        return f;
    }

    private bool Has(ListFormat f) => (_format & f) != 0;

    private string Fmt(string tab, string notab) => Has(ListFormat.NoTable) ? notab : tab;

    private void Printf(string tabFormat, string notabFormat, object arg) =>
        _sb.Append(CultureInfo.InvariantCulture, $"{Pad(Has(ListFormat.NoTable) ? notabFormat : tabFormat, arg)}");

    /// <summary>A tiny printf for the few patterns used here: %-Ns, %Ns, %s, %-Nu, %Nu, %u, with literal text around.</summary>
    private static string Pad(string format, object arg)
    {
        int pct = format.IndexOf('%', StringComparison.Ordinal);
        int end = pct + 1;
        bool left = false;
        if (format[end] == '-') { left = true; end++; }
        int width = 0;
        while (char.IsAsciiDigit(format[end])) width = (width * 10) + (format[end++] - '0');
        while (format[end] is 'l' or 'h') end++;
        end++; // conversion letter
        string value = Convert.ToString(arg, CultureInfo.InvariantCulture) ?? string.Empty;
        value = left ? value.PadRight(width) : value.PadLeft(width);
        return string.Concat(format.AsSpan(0, pct), value, format.AsSpan(end));
    }

    /// <summary>xtables_print_num: plain or with K/M/G/T suffixes.</summary>
    public void PrintNumber(ulong number, ListFormat format)
    {
        bool notab = (format & ListFormat.NoTable) != 0;
        if ((format & ListFormat.KiloMegaGiga) == 0)
        {
            _sb.Append(notab ? $"{number} " : Pad("%8llu ", number));
            return;
        }
        if (number <= 99999)
        {
            _sb.Append(notab ? $"{number} " : Pad("%5llu ", number));
            return;
        }
        number = (number + 500) / 1000;
        foreach (char suffix in "KMG")
        {
            if (number <= 9999)
            {
                _sb.Append(notab ? $"{number}{suffix} " : Pad("%4llu" + suffix + " ", number));
                return;
            }
            number = (number + 500) / 1000;
        }
        _sb.Append(notab ? $"{number}T " : Pad("%4lluT ", number));
    }

    public void Header(Chain chain, int references)
    {
        _sb.Append("Chain ").Append(chain.Name);
        if (chain.IsBuiltin)
        {
            _sb.Append(" (policy ").Append(chain.Policy);
            if (!Has(ListFormat.NoCounts))
            {
                _sb.Append(' ');
                PrintNumber(chain.Counters.Packets, _format | ListFormat.NoTable);
                _sb.Append("packets, ");
                PrintNumber(chain.Counters.Bytes, _format | ListFormat.NoTable);
                _sb.Append("bytes");
            }
            _sb.Append(")\n");
        }
        else
        {
            _sb.Append(" (").Append(references.ToString(CultureInfo.InvariantCulture)).Append(" references)\n");
        }

        if (Has(ListFormat.LineNumbers)) Printf("%-4s ", "%s ", "num");
        if (!Has(ListFormat.NoCounts))
        {
            if (Has(ListFormat.KiloMegaGiga))
            {
                Printf("%5s ", "%s ", "pkts");
                Printf("%5s ", "%s ", "bytes");
            }
            else
            {
                Printf("%8s ", "%s ", "pkts");
                Printf("%10s ", "%s ", "bytes");
            }
        }
        if (!Has(ListFormat.NoTarget)) Printf("%-9s ", "%s ", "target");
        _sb.Append(" prot ");
        if (Has(ListFormat.Options)) _sb.Append("opt");
        if (Has(ListFormat.Via))
        {
            Printf(" %-6s ", "%s ", "in");
            Printf("%-6s ", "%s ", "out");
        }
        Printf(" %-19s ", "%s ", "source");
        Printf(" %-19s ", " %s ", "destination");
        _sb.Append('\n');
    }

    public void Rule(Rule rule, int lineNumber)
    {
        using NameDb.PrintingScope scope = NameDb.UseForPrinting(_names);
        if (Has(ListFormat.LineNumbers)) Printf("%-4u ", "%u ", lineNumber);
        if (!Has(ListFormat.NoCounts))
        {
            PrintNumber(rule.Counters.Packets, _format);
            PrintNumber(rule.Counters.Bytes, _format);
        }
        string target = rule.Target?.Name ?? string.Empty;
        if (!Has(ListFormat.NoTarget)) Printf("%-9s ", "%s ", target);

        _sb.Append(rule.ProtocolInverted ? '!' : ' ');
        string? pname = Has(ListFormat.Numeric) ? null : (rule.Protocol == 0 ? "all" : Protocols.Name(rule.Protocol, _names));
        Printf("%-4s ", "%s ", pname ?? rule.Protocol.ToString(CultureInfo.InvariantCulture));

        if (Has(ListFormat.Options))
        {
            if (Has(ListFormat.NoTable)) _sb.Append("opt ");
            _sb.Append(rule.FragmentInverted ? '!' : '-');
            _sb.Append(rule.Fragment ? 'f' : '-');
            _sb.Append(' ');
        }

        if (Has(ListFormat.Via))
        {
            string anyName = Has(ListFormat.Numeric) ? "*" : "any";
            // "-i +" matches every interface: iptables-nft puts no interface match in the rule, so it lists as any.
            static bool Any(string name, bool inverted) => name.Length == 0 || (name == "+" && !inverted);
            string inName = (rule.InInverted ? "!" : string.Empty) + (Any(rule.InInterface, rule.InInverted) ? anyName : rule.InInterface);
            string outName = (rule.OutInverted ? "!" : string.Empty) + (Any(rule.OutInterface, rule.OutInverted) ? anyName : rule.OutInterface);
            Printf(" %-6s ", "in %s ", inName);
            Printf("%-6s ", "out %s ", outName);
        }

        _sb.Append(rule.SourceInverted ? '!' : ' ');
        Printf("%-19s ", "%s ", AddressText(rule.Source));
        _sb.Append(rule.DestinationInverted ? '!' : ' ');
        Printf("%-19s ", "-> %s", AddressText(rule.Destination));

        if (Has(ListFormat.NoTable)) _sb.Append("  ");
        if (rule.Target is { Goto: true }) _sb.Append("[goto] ");

        bool numeric = Has(ListFormat.Numeric);
        foreach (MatchUse m in rule.Matches)
        {
            if (!m.Extension.HiddenInListing(m.Data)) m.Extension.Print(_sb, m.Data, rule.Family, numeric);
        }
        if (rule.Target is { Extension: { } te, Data: { } td }) te.Print(_sb, td, rule.Family, numeric);
        if (!Has(ListFormat.NoNewline)) _sb.Append('\n');
    }

    private string AddressText(IpNet net)
    {
        // IPv4 prints "anywhere" for a zero mask; ip6tables for the unspecified address, whatever the mask.
        bool any = net.Family == IpFamily.V4 ? net.Mask == UInt128.Zero : net.Address == UInt128.Zero;
        if (any && !Has(ListFormat.Numeric)) return "anywhere";
        string addr = Has(ListFormat.Numeric) ? net.AddressText : AddressToAnyName(net.Address, net.Family, _names);
        return addr + IpNet.MaskSuffixForList(net.Mask, net.Family);
    }

    /// <summary>xtables_ipaddr_to_anyname: a host name, else (IPv4) a network name, else the number.</summary>
    public static string AddressToAnyName(UInt128 address, IpFamily family, NameDb names)
    {
        string? host = names.HostName(address, family);
        if (host is not null) return host;
        if (family == IpFamily.V4)
        {
            string? net = names.NetworkName((uint)address);
            if (net is not null) return net;
        }
        return IpNet.FormatAddress(address, family);
    }
}
