using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>
/// The save form of a rule (iptables-save, <c>-S</c>): -s -d -i -o -p -f, then each match with its
/// options, then the counters when asked, then the target (nft_ipv4_save_rule / save_matches_and_target).
/// </summary>
public static class RuleWriter
{
    /// <summary>The rule after "-A CHAIN", with a leading space (" -p tcp -m tcp --dport 22 -j ACCEPT").</summary>
    public static string SaveBody(Rule rule, NameDb? names = null, bool inlineCounters = false)
    {
        var sb = new StringBuilder(64);
        AppendSaveBody(sb, rule, names ?? NameDb.System, inlineCounters);
        return sb.ToString();
    }

    public static void AppendSaveBody(StringBuilder sb, Rule rule, NameDb names, bool inlineCounters)
    {
        SaveAddress(sb, 's', rule.Source, rule.SourceInverted);
        SaveAddress(sb, 'd', rule.Destination, rule.DestinationInverted);
        SaveInterface(sb, 'i', rule.InInterface, rule.InInverted);
        SaveInterface(sb, 'o', rule.OutInterface, rule.OutInverted);
        if (rule.Protocol > 0)
        {
            if (rule.ProtocolInverted) sb.Append(" !");
            string? pname = Protocols.Name(rule.Protocol, names);
            sb.Append(" -p ").Append(pname ?? rule.Protocol.ToString(CultureInfo.InvariantCulture));
        }
        if (rule.Fragment)
        {
            if (rule.FragmentInverted) sb.Append(" !");
            sb.Append(" -f");
        }
        foreach (MatchUse m in rule.Matches)
        {
            if (m.Extension.HiddenInListing(m.Data)) continue;
            sb.Append(" -m ").Append(m.Extension.SaveName(m.Data));
            m.Extension.Save(sb, m.Data, rule.Family);
        }
        if (inlineCounters)
        {
            sb.Append(" -c ").Append(rule.Counters.Packets.ToString(CultureInfo.InvariantCulture))
              .Append(' ').Append(rule.Counters.Bytes.ToString(CultureInfo.InvariantCulture));
        }
        if (rule.Target is { } t)
        {
            if (t.Extension is not null)
            {
                sb.Append(" -j ").Append(t.Extension.SaveName(t.Data!));
                t.Extension.Save(sb, t.Data!, rule.Family);
            }
            else if (t.Name.Length > 0)
            {
                sb.Append(t.Goto ? " -g " : " -j ").Append(t.Name);
            }
        }
    }

    private static void SaveAddress(StringBuilder sb, char letter, IpNet net, bool inverted)
    {
        if (!inverted && net.IsZero) return;
        if (inverted) sb.Append(" !");
        sb.Append(" -").Append(letter).Append(' ');
        net.AppendSaveText(sb);
    }

    private static void SaveInterface(StringBuilder sb, char letter, string name, bool inverted)
    {
        if (name.Length == 0 || (name == "+" && !inverted)) return;
        if (inverted) sb.Append(" !");
        sb.Append(" -").Append(letter).Append(' ').Append(name);
    }
}
