using Chainwalk.Extensions.Matches;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>
/// Whether a rule's iptables-save line loads back to the same line. A few rules have a save form that
/// iptables-restore cannot load (an IDLETIMER label with a space, a comment with a newline): the host store refuses
/// to store them. Proving it by parsing every line again would double the cost of saving a large ruleset, so a rule
/// is taken as proven when (1) it is built only from parts whose save form always reloads exactly (addresses,
/// plain interface names, tcp/udp/icmp/any protocol, the tcp and udp matches, a standard verdict or a jump to a
/// plainly named chain: see <see cref="ReloadsExactly"/>), or (2) it was itself read from exactly its own save
/// line (a fixed point: <see cref="Rule.SaveFormVerified"/>), or (3) its line was parsed again here and matched.
/// </summary>
public static class SaveFormCheck
{
    /// <summary>
    /// True when every part of the rule has a save form that the restore parser reads back to the same text, so no
    /// second parse is needed. <paramref name="chain"/> is the chain the rule is in (its name is on the line too).
    /// </summary>
    public static bool ReloadsExactly(Rule rule, string chain)
    {
        // Asked for every rule of a chain in turn (a restore, a save): the chain's name is checked once per run of it.
        if (!ReferenceEquals(chain, _lastPlainChain))
        {
            if (!IsPlainName(chain)) return false;
            _lastPlainChain = chain;
        }
        if (rule.Protocol is not (0 or Protocols.Icmp or Protocols.Tcp or Protocols.Udp)) return false;
        if (rule.InInterface.Length > 0 && !IsPlainName(rule.InInterface)) return false;
        if (rule.OutInterface.Length > 0 && !IsPlainName(rule.OutInterface)) return false;
        foreach (MatchUse m in rule.Matches)
        {
            // tcp and udp print ports, flags and option numbers only (after the nf_tables fold of NftTcpUdpRoundTrip).
            if (m.Extension is not (TcpMatch or UdpMatch)) return false;
        }
        return rule.Target switch
        {
            null => true,
            { Extension: not null } => false,
            { } t => t.IsStandardVerdict || IsPlainName(t.Name),
        };
    }

    /// <summary>The last chain name <see cref="ReloadsExactly"/> found plain (a string's text never changes).</summary>
    private static string? _lastPlainChain;

    /// <summary>A name that is one restore parameter as it is: letters, digits and <c>_ . - + : @ %</c>, not starting with '-' or '!'.</summary>
    public static bool IsPlainName(string name) => IsPlainName(name.AsSpan());

    /// <inheritdoc cref="IsPlainName(string)"/>
    public static bool IsPlainName(ReadOnlySpan<char> name)
    {
        if (name.Length == 0 || name[0] is '-' or '!') return false;
        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' or '+' or ':' or '@' or '%')) return false;
        }
        return true;
    }

    /// <summary>
    /// Parses the save line <c>-A CHAIN BODY</c> of table <paramref name="table"/> again, as iptables-restore would,
    /// and returns null when it gives back the same line, else why not (the parser's message, or "differs").
    /// </summary>
    public static string? Reload(IpFamily family, string table, string chain, string body, RestoreReader reader)
    {
        string line = "-A " + chain + body;
        // A newline in the line (a comment or label that holds one) splits it when the file is read back.
        if (line.Contains('\n', StringComparison.Ordinal)) return "the line breaks in two";
        string program = family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore";
        try
        {
            var argv = new List<string> { program, "-t", table };
            argv.AddRange(reader.Tokenize(line, 1));
            ParsedCommand cmd = new CommandLineParser(family, program, restore: true).Parse(argv.ToArray());
            if (cmd.Rules.Count != 1 || "-A " + cmd.Chain + RuleWriter.SaveBody(cmd.Rules[0]) != line) return "differs";
            return null;
        }
        catch (XtablesException ex)
        {
            return ex.Message.Trim();
        }
    }
}
