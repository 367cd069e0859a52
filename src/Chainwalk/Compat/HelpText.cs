using Chainwalk.Net;

namespace Chainwalk.Compat;

/// <summary>Usage texts of the compat tools (Chainwalk's own wording; the commands and options are iptables').</summary>
public static class HelpText
{
    public static string Iptables(IpFamily family)
    {
        string p = family.Tool();
        return $"""
{p} v1.8.9 (nf_tables) on a Chainwalk virtual host

Usage: {p} -[ACD] chain rule-specification [options]
       {p} -I chain [rulenum] rule-specification [options]
       {p} -R chain rulenum rule-specification [options]
       {p} -D chain rulenum [options]
       {p} -[LS] [chain [rulenum]] [options]
       {p} -[FZ] [chain] [options]
       {p} -[NX] chain
       {p} -E old-chain-name new-chain-name
       {p} -P chain target [options]
       {p} -h (print this help information)

Commands:
  --append  -A chain            append a rule to the end of chain
  --check   -C chain            check whether a matching rule exists
  --delete  -D chain            delete the matching rule from chain
  --delete  -D chain rulenum    delete rule number rulenum (1 = first)
  --insert  -I chain [rulenum]  insert at position rulenum (default 1)
  --replace -R chain rulenum    replace rule number rulenum
  --list    -L [chain [rulenum]]
                                list the rules of a chain or of all chains
  --list-rules -S [chain [rulenum]]
                                print the rules as {p} commands
  --flush   -F [chain]          delete all rules of a chain or of all chains
  --zero    -Z [chain [rulenum]]
                                zero packet and byte counters
  --new     -N chain            create a user-defined chain
  --delete-chain -X [chain]     delete a user-defined chain
  --policy  -P chain target     set the policy of a built-in chain
  --rename-chain -E old new     rename a user-defined chain

Options:
  -4, --ipv4 / -6, --ipv6       accepted for the matching family
  [!] --protocol -p proto       protocol by number or name, e.g. tcp
  [!] --source -s address[/mask][,...]
  [!] --destination -d address[/mask][,...]
  [!] --in-interface -i name[+] network interface the packet came in on
  [!] --out-interface -o name[+]
                                network interface the packet leaves on
  --jump -j target              target of the rule
  --goto -g chain               jump to chain without return
  --match -m match              use an extension match
  --numeric -n                  numeric addresses and ports
  --table -t table              table to work on (default: filter)
  --verbose -v                  verbose mode
  --wait -w [seconds]           wait for the lock
  --line-numbers                print line numbers when listing
  --exact -x                    expand numbers (show exact values)
{(family == IpFamily.V4 ? "  [!] --fragment -f             match second or further fragments only\n" : string.Empty)}  --set-counters -c PKTS BYTES  set the counters of the rule
  --version -V                  print the version

""";
    }

    public static string Restore(string program) => $"""
Usage: {program} [-c] [-v] [-V] [-t] [-h] [-n] [-w secs] [-W usecs] [-T table] [-M command] [file]
    [ --counters ]    take the counters from the input
    [ --verbose ]
    [ --version ]
    [ --test ]        parse only, change nothing
    [ --help ]
    [ --noflush ]     do not flush the tables first
    [ --wait=<seconds> ]
    [ --table=<name> ] restore only this table

""";
}
