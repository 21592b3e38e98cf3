package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// runCompletion prints a completion script for bash or zsh built from the
// command list, so it never lags behind the commands.
func runCompletion(_ context.Context, e *env, args []string) int {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		return fail(e, "completion", exitUsage, "want bash or zsh, e.g. kioskctl completion bash > /etc/bash_completion.d/kioskctl")
	}
	words := completionWords()
	if args[0] == "bash" {
		fmt.Fprint(e.Stdout, bashCompletion(words))
	} else {
		fmt.Fprint(e.Stdout, zshCompletion(words))
	}
	return exitOK
}

// completionWords maps each command to the words that may follow it
// (subcommands and flags); "" holds the commands and global flags.
func completionWords() map[string][]string {
	words := map[string][]string{"": {"--json", "--config"}}
	for _, c := range commands() {
		words[""] = append(words[""], c.name)
		var w []string
		w = append(w, c.sub...)
		if c.flags != nil {
			c.flags().VisitAll(func(f *flag.Flag) { w = append(w, "--"+f.Name) })
		}
		words[c.name] = append(w, "--json")
	}
	for k := range words {
		sort.Strings(words[k])
	}
	return words
}

// commandNames returns the commands of completionWords' map, sorted.
func commandNames(words map[string][]string) []string {
	names := slices.Sorted(maps.Keys(words))
	return slices.DeleteFunc(names, func(k string) bool { return k == "" })
}

func bashCompletion(words map[string][]string) string {
	var b strings.Builder
	b.WriteString("# bash completion for kioskctl (kioskctl completion bash)\n_kioskctl() {\n")
	b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]} cmd=\"\" i\n")
	b.WriteString("  for ((i=1; i<COMP_CWORD; i++)); do case ${COMP_WORDS[i]} in -*) ;; *) cmd=${COMP_WORDS[i]}; break;; esac; done\n")
	b.WriteString("  case $cmd in\n")
	for _, k := range commandNames(words) {
		fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\"));;\n", k, strings.Join(words[k], " "))
	}
	fmt.Fprintf(&b, "    *) COMPREPLY=($(compgen -W %q -- \"$cur\"));;\n", strings.Join(words[""], " "))
	b.WriteString("  esac\n}\ncomplete -o default -F _kioskctl kioskctl\n")
	return b.String()
}

func zshCompletion(words map[string][]string) string {
	var b strings.Builder
	b.WriteString("#compdef kioskctl\n# zsh completion for kioskctl (kioskctl completion zsh)\n_kioskctl() {\n")
	b.WriteString("  local cmd=${words[2]}\n  if (( CURRENT == 2 )); then\n")
	fmt.Fprintf(&b, "    compadd -- %s\n    return\n  fi\n  case $cmd in\n", strings.Join(words[""], " "))
	for _, k := range commandNames(words) {
		fmt.Fprintf(&b, "    %s) compadd -- %s;;\n", k, strings.Join(words[k], " "))
	}
	b.WriteString("    *) _files;;\n  esac\n}\ncompdef _kioskctl kioskctl\n")
	return b.String()
}
